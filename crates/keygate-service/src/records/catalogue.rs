//! The write-spec catalogue: which record endpoints take writes, their fields, kinds and bounds,
//! and the same specs described for the API contract ([`WritableField`]). Data only.

use keygate_domain::Resource;

use crate::{Keygate, ServiceError, ServiceResult};

/// Columns the schema declares NOT NULL: a JSON null for them is a field error, not a 500.
pub(super) const NOT_NULL: &[&str] = &[
    "is_client",
    "is_supplier",
    "is_disabled",
    "properties",
    "tags",
    "status",
    "currency",
    "number",
    "type",
    "amount_net_cents",
    "amount_vat_cents",
    "amount_total_cents",
    "owner_id",
    "user_id",
    "date",
    "hours",
];

pub const DOCUMENT_TYPES: &[&str] = &[
    "INVOICE.SALES",
    "INVOICE.SALES.PROFORMA",
    "INVOICE.SALES.CORRECTION",
    "INVOICE.PURCHASE",
    "INVOICE.PURCHASE.PROFORMA",
    "INVOICE.PURCHASE.CORRECTION",
    "DOCUMENT.ISSUED",
    "DOCUMENT.RECEIVED",
    "DOCUMENT.CONTRACT",
    "DOCUMENT.QUOTATION.SALES",
    "DOCUMENT.ORDER.PURCHASE",
];

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Text(usize),
    DocType,
    Bool,
    Date,
    Money,
    Hours,
    Estimate,
    Ref(&'static str),
    UserRef,
    Properties,
    Tags,
}

#[derive(Debug)]
pub(super) struct FieldSpec {
    pub(super) name: &'static str,
    pub(super) column: &'static str,
    pub(super) kind: Kind,
    pub(super) required: bool,
}

#[derive(Debug)]
pub(super) struct WriteSpec {
    pub(super) name: &'static str,
    pub(super) table: &'static str,
    pub(super) resource: Resource,
    pub(super) owner_field: &'static str,
    pub(super) fields: &'static [FieldSpec],
}

const fn f(name: &'static str, column: &'static str, kind: Kind, required: bool) -> FieldSpec {
    FieldSpec { name, column, kind, required }
}

const OWNER: FieldSpec = f("ownerId", "owner_id", Kind::UserRef, false);
const PROPS: FieldSpec = f("properties", "properties", Kind::Properties, false);

pub(super) const SPECS: &[WriteSpec] = &[
    WriteSpec {
        name: "companies",
        table: "companies",
        resource: Resource::Companies,
        owner_field: "owner_id",
        fields: &[
            f("name", "name", Kind::Text(200), true),
            f("registrationNumber", "registration_number", Kind::Text(40), false),
            f("vatId", "vat_id", Kind::Text(40), false),
            f("address", "address", Kind::Text(500), false),
            f("isClient", "is_client", Kind::Bool, false),
            f("isSupplier", "is_supplier", Kind::Bool, false),
            f("isDisabled", "is_disabled", Kind::Bool, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "persons",
        table: "persons",
        resource: Resource::Persons,
        owner_field: "owner_id",
        fields: &[
            f("firstName", "first_name", Kind::Text(100), true),
            f("lastName", "last_name", Kind::Text(100), true),
            f("email", "email", Kind::Text(254), false),
            f("phone", "phone", Kind::Text(40), false),
            f("companyId", "company_id", Kind::Ref("companies"), false),
            f("isDisabled", "is_disabled", Kind::Bool, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "jobs",
        table: "jobs",
        resource: Resource::Jobs,
        owner_field: "owner_id",
        fields: &[
            f("name", "name", Kind::Text(200), true),
            f("number", "number", Kind::Text(40), false),
            f("status", "status", Kind::Text(40), false),
            f("companyId", "company_id", Kind::Ref("companies"), false),
            f("startDate", "start_date", Kind::Date, false),
            f("endDate", "end_date", Kind::Date, false),
            f("budget", "budget_cents", Kind::Money, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "tasks",
        table: "tasks",
        resource: Resource::Tasks,
        owner_field: "owner_id",
        fields: &[
            f("name", "name", Kind::Text(200), true),
            f("jobId", "job_id", Kind::Ref("jobs"), false),
            f("assigneeId", "assignee_id", Kind::UserRef, false),
            f("status", "status", Kind::Text(40), false),
            f("dueDate", "due_date", Kind::Date, false),
            f("estimate", "estimate_hours", Kind::Estimate, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "documents",
        table: "documents",
        resource: Resource::Documents,
        owner_field: "owner_id",
        fields: &[
            f("type", "type", Kind::DocType, true),
            f("companyId", "company_id", Kind::Ref("companies"), true),
            f("personId", "person_id", Kind::Ref("persons"), false),
            f("number", "number", Kind::Text(40), false),
            f("status", "status", Kind::Text(40), false),
            f("issueDate", "issue_date", Kind::Date, false),
            f("dueDate", "due_date", Kind::Date, false),
            f("currency", "currency", Kind::Text(3), false),
            f("amountNet", "amount_net_cents", Kind::Money, false),
            f("amountVat", "amount_vat_cents", Kind::Money, false),
            f("amountTotal", "amount_total_cents", Kind::Money, false),
            f("tags", "tags", Kind::Tags, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "time",
        table: "time_entries",
        resource: Resource::Time,
        owner_field: "owner_id",
        fields: &[
            f("date", "date", Kind::Date, true),
            f("hours", "hours", Kind::Hours, true),
            f("jobId", "job_id", Kind::Ref("jobs"), false),
            f("taskId", "task_id", Kind::Ref("tasks"), false),
            f("note", "note", Kind::Text(2000), false),
            f("userId", "user_id", Kind::UserRef, false),
        ],
    },
    WriteSpec { name: "users", table: "users", resource: Resource::Users, owner_field: "id", fields: &[] },
];

/// A writable field of a record endpoint, described for the API contract (keygate-web's
/// OpenAPI document), read from the same specs that validate writes so the two cannot drift.
#[derive(Debug, Clone, Copy)]
pub struct WritableField {
    /// The JSON member name.
    pub name: &'static str,
    /// Required when creating.
    pub required: bool,
    /// Whether `null` is accepted (it clears the field).
    pub nullable: bool,
    /// The JSON type: `string`, `boolean`, `number`, `integer`, `object` or `array` (of strings).
    pub json_type: &'static str,
    /// `date` for `YYYY-MM-DD` strings.
    pub format: Option<&'static str>,
    pub max_length: Option<usize>,
    /// The values a string may take, when they are fixed.
    pub one_of: &'static [&'static str],
    /// Bounds of a number: (minimum, exclusive), (maximum, exclusive).
    pub minimum: Option<(f64, bool)>,
    pub maximum: Option<(f64, bool)>,
    /// What the value means or must be, in a few words.
    pub about: &'static str,
}

impl Keygate {
    /// The record endpoints that take writes (`POST`, and `PATCH` but for `time`), each with its
    /// writable fields. `users` has its own fields (see `create_user_record`) and lists none here.
    pub fn writable_records() -> Vec<(&'static str, Vec<WritableField>)> {
        SPECS.iter().map(|spec| (spec.name, spec.fields.iter().map(WritableField::of).collect())).collect()
    }
}

impl WritableField {
    fn of(f: &FieldSpec) -> Self {
        let base = Self {
            name: f.name,
            required: f.required,
            nullable: !(f.required || NOT_NULL.contains(&f.column)),
            json_type: "string",
            format: None,
            max_length: None,
            one_of: &[],
            minimum: None,
            maximum: None,
            about: "",
        };
        match f.kind {
            Kind::Text(max) => Self { max_length: Some(max), about: "text", ..base },
            Kind::DocType => Self { one_of: DOCUMENT_TYPES, about: "the document's type", ..base },
            Kind::Bool => Self { json_type: "boolean", ..base },
            Kind::Date => Self { format: Some("date"), about: "a date YYYY-MM-DD", ..base },
            Kind::Money => Self {
                json_type: "number",
                minimum: Some((-1e13, true)),
                maximum: Some((1e13, true)),
                about: "an amount such as 1250.50 (kept in cents)",
                ..base
            },
            Kind::Hours => Self {
                json_type: "number",
                minimum: Some((0.0, true)),
                maximum: Some((24.0, false)),
                about: "hours, above 0 and at most 24",
                ..base
            },
            Kind::Estimate => Self {
                json_type: "number",
                minimum: Some((0.0, false)),
                maximum: Some((1e6, true)),
                about: "a non-negative number of hours",
                ..base
            },
            Kind::Ref(_) => Self {
                json_type: "integer",
                minimum: Some((1.0, false)),
                about: "the id of a record of this unit that the key may read",
                ..base
            },
            Kind::UserRef => Self {
                json_type: "integer",
                minimum: Some((1.0, false)),
                about: "the id of a user of the tenant",
                ..base
            },
            Kind::Properties => {
                Self { json_type: "object", about: "custom properties, a JSON object of at most 1 MB", ..base }
            }
            Kind::Tags => Self { json_type: "array", about: "at most 100 strings", ..base },
        }
    }
}

pub(super) fn write_spec(resource: &str) -> ServiceResult<&'static WriteSpec> {
    SPECS
        .iter()
        .find(|s| s.name == resource)
        .ok_or_else(|| ServiceError::NotFound(format!("the resource `{resource}`")))
}
