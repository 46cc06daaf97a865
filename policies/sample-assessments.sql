-- The tables of domain assessments in policies/sample.yaml, with a few people's rows:
-- Alice is u-1001, Bob u-2002, Carol u-3003, Dan u-4004. Load into database assessments.
CREATE SCHEMA assessments;
CREATE TABLE assessments.responses (id serial PRIMARY KEY, user_id text NOT NULL, question text, answer text);
CREATE TABLE assessments.scores (user_id text NOT NULL, dimension text, score int);
CREATE TABLE assessments.events (id serial PRIMARY KEY, user_id text, ip text, city text, kind text);
INSERT INTO assessments.responses (user_id, question, answer) VALUES
  ('u-1001', 'How do you recharge?', 'Long walks'),
  ('u-1001', 'What are you working on?', 'Patience'),
  ('u-1001', 'Who supports you?', 'My sister'),
  ('u-2002', 'How do you recharge?', 'Reading'),
  ('u-3003', 'How do you recharge?', 'Climbing'),
  ('u-4004', 'How do you recharge?', 'Cooking');
INSERT INTO assessments.scores VALUES ('u-1001', 'resilience', 7), ('u-1001', 'focus', 5), ('u-2002', 'focus', 8);
INSERT INTO assessments.events (user_id, ip, city, kind) VALUES
  ('u-1001', '203.0.113.7', 'Utrecht', 'login'), ('u-1001', '203.0.113.7', 'Utrecht', 'quiz'),
  ('u-2002', '198.51.100.4', 'Ghent', 'login');
