"""Cross-cutting pieces every domain package uses: config, database, errors, clock."""
