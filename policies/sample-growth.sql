-- The tables of domain growth in policies/sample.yaml, with a few people's rows (by email).
-- Load into database growth.
CREATE SCHEMA growth;
CREATE TABLE growth.contacts (email text PRIMARY KEY, name text, opted_in boolean);
CREATE TABLE growth.campaign_events (id serial PRIMARY KEY, email text REFERENCES growth.contacts(email), campaign text, event text);
CREATE TABLE growth.invoices (id serial PRIMARY KEY, email text NOT NULL, cents int);
-- The policy normalizes email with lowercase, so the agent compares lower(email::text): an
-- expression index on that serves its queries.
CREATE INDEX ON growth.contacts (lower(email::text));
CREATE INDEX ON growth.campaign_events (lower(email::text));
CREATE INDEX ON growth.invoices (lower(email::text));
INSERT INTO growth.contacts VALUES ('alice@example.com', 'Alice', true), ('bob@example.com', 'Bob', true),
  ('carol@example.com', 'Carol', true), ('dan@example.com', 'Dan', true);
INSERT INTO growth.campaign_events (email, campaign, event) VALUES
  ('alice@example.com', 'spring', 'opened'), ('alice@example.com', 'spring', 'clicked'),
  ('bob@example.com', 'spring', 'opened'), ('carol@example.com', 'spring', 'opened'),
  ('dan@example.com', 'spring', 'opened');
INSERT INTO growth.invoices (email, cents) VALUES ('alice@example.com', 4900), ('bob@example.com', 4900);
