-- The tables the app needs. Run at every startup, so each statement must be safe to repeat:
-- IF NOT EXISTS skips what is already there and never touches existing rows.
CREATE TABLE IF NOT EXISTS users (
    id SERIAL PRIMARY KEY,  -- numbered by Postgres: 1, 2, 3, ... never reused
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    place TEXT NOT NULL
);

-- A manual migration: a table created by lesson 10 gains the new column, existing rows keep
-- their data (their password_hash is NULL), and a second run changes nothing.
ALTER TABLE users ADD COLUMN IF NOT EXISTS password_hash TEXT;
