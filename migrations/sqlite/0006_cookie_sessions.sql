-- See migrations/postgres/0006: refresh tokens issued to a cookie session.
ALTER TABLE refresh_tokens ADD COLUMN cookie BOOLEAN NOT NULL DEFAULT 0;
