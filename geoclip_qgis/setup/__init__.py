"""Getting the Python packages into QGIS's Python: what is found, and the installer."""
