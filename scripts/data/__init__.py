"""Data tools: the OSM import, synthetic catalogues, behaviour generation, a co-visitation world, Foursquare."""
