-- silkgate 0010: OCPP ID tokens are case-insensitive (1.6 "IdToken ... case insensitive",
-- 2.0.1 IdTokenType likewise): the central system looks them up on lower(id_token), and two
-- rows differing only in case would be the same token.

CREATE UNIQUE INDEX id_tokens_lower_idx ON id_tokens (lower(id_token));
