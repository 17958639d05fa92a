"""Data tools: the OSM import, synthetic catalogues, behaviour generation, the Foursquare adapter."""
