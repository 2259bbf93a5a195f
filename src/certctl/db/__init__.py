"""Engine, sessions, column types, the shared store base and the Alembic migrations."""
