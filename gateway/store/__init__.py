"""TimescaleDB store: schema migrations, COPY writers, retention and rollups."""
