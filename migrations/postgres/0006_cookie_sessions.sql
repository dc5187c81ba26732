-- Browser sessions keep their refresh token in a cookie (src/auth/cookie.rs).
-- A token issued to one may be presented again within 30 s of its rotation
-- (two tabs, a refresh cut short) without revoking its family; a token
-- issued in a JSON body never may.
ALTER TABLE refresh_tokens ADD COLUMN cookie boolean NOT NULL DEFAULT false;
