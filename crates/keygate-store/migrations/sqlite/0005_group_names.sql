-- Group names are unique per tenant whatever their case ("Sales" and "sales" are one group).
CREATE UNIQUE INDEX user_groups_name_nocase ON user_groups (tenant_id, lower(name));
CREATE INDEX memberships_group ON memberships (group_id);
