"""GeoCLIP over archives: the same predictor as ``GeoCLIP.predict``, run as a Ray Data job.

``python -m model_utils.batch geolocate|embed ...`` (see ``__main__``). One machine by default
(Ray starts a local instance), any Ray cluster given its address. Work is cut into shards of a
fixed photo list; each shard is written once, atomically, as a GeoParquet file, so a retried
shard (a worker or node lost) replaces its own file and ``--resume`` skips finished ones.
Ray is imported only here, never by the rest of ``model_utils`` or by the plugin at load time.
"""
