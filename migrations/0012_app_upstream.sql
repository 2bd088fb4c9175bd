-- The edge goes straight to an app's container (issue 14): its address on
-- the project network and the app's port, as `ip:port`. `host_port` stays
-- for the fallback where the host cannot reach Docker's networks.
ALTER TABLE apps ADD COLUMN upstream TEXT;
