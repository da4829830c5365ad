"""The Processing algorithms (toolbox, batch, models, qgis_process)."""
