-- Documents are listed by status and by type far more than by anything else (the original
-- system's own examples filter on them): index both, keeping id order within each value.
CREATE INDEX documents_status ON documents (tenant_id, unit_id, status, id);
CREATE INDEX documents_type ON documents (tenant_id, unit_id, type, id);
