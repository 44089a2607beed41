"""PostgreSQL storage: schema and migrations, the batched writer, the spool, and queries."""
