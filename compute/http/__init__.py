"""HTTP for results in front of DRF: the route table, the hit protocol, the WSGI front."""
