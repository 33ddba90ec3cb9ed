"""The store: SQLAlchemy models' base, engines and the sealed-attribute integration."""
