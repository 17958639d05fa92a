"""Domain logic: search, deal ranking, clustering, statistics figures. No Flask, no Redis."""
