//! The operator's use cases that replaced reaching past the service into the store (issue 18):
//! every tenant, groups with member counts, backups. What a console user may not do, they are
//! refused, and nothing is written.

use keygate_service::{Caller, CreateUser, GroupSummary, Keygate, ServiceConfig, ServiceError};
use keygate_store::testing::TestDatabase;

on_both_backends!(
    the_operator_lists_every_tenant_and_a_console_user_is_refused_the_list,
    groups_are_listed_with_the_number_of_their_members,
    a_backup_is_the_operators_and_is_written_only_for_the_embedded_database,
);

async fn two_tenants(t: &TestDatabase) -> (Keygate, keygate_domain::TenantId) {
    let kg = Keygate::new(t.db.clone(), ServiceConfig::default());
    let acme = kg.create_tenant(&Caller::CLI, "acme", "admin@acme.example", None).await.expect("acme");
    kg.create_tenant(&Caller::CLI, "globex", "admin@globex.example", None).await.expect("globex");
    (kg, acme.tenant)
}

/// The administrator of `acme`, in the console with every power of their tenant.
async fn acme_admin(kg: &Keygate, tenant: keygate_domain::TenantId) -> Caller {
    let record = kg.user_by_email(tenant, "admin@acme.example").await.expect("admin");
    let permissions = kg.user_permissions(&Caller::CLI, tenant, record.id).await.expect("permissions");
    Caller::User { id: record.id, tenant, email: record.email, permissions, units: record.units, ip: None }
}

async fn the_operator_lists_every_tenant_and_a_console_user_is_refused_the_list(t: TestDatabase) {
    let (kg, acme) = two_tenants(&t).await;
    let slugs: Vec<String> =
        kg.list_tenants(&Caller::CLI).await.expect("list").iter().map(|t| t.policy.slug.to_string()).collect();
    assert_eq!(slugs, ["acme", "globex"]);
    let supervisor = acme_admin(&kg, acme).await;
    assert!(matches!(kg.list_tenants(&supervisor).await, Err(ServiceError::Forbidden(_))));
}

async fn groups_are_listed_with_the_number_of_their_members(t: TestDatabase) {
    let (kg, acme) = two_tenants(&t).await;
    kg.create_group(&Caller::CLI, acme, "Readers", &["companies:read:all".to_owned()]).await.expect("group");
    for n in 0..3 {
        let new = CreateUser {
            email: format!("robot{n}@acme.example"),
            name: format!("Robot {n}"),
            category: "programmatic".into(),
            groups: vec!["Readers".into()],
            ..Default::default()
        };
        kg.create_user(&Caller::CLI, acme, new).await.expect("user");
    }
    let admin = acme_admin(&kg, acme).await;
    let counts: Vec<(String, usize)> = kg
        .list_groups_with_members(&admin, acme)
        .await
        .expect("groups")
        .into_iter()
        .map(|GroupSummary { group, members }| (group.name, members))
        .collect();
    assert!(counts.contains(&("Readers".to_owned(), 3)), "{counts:?}");
    assert!(counts.contains(&("Supervisor".to_owned(), 1)), "{counts:?}");
}

async fn a_backup_is_the_operators_and_is_written_only_for_the_embedded_database(t: TestDatabase) {
    let (kg, acme) = two_tenants(&t).await;
    let file = std::env::temp_dir().join(format!("keygate-service-backup-{}-{acme}.db", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let supervisor = acme_admin(&kg, acme).await;
    assert!(matches!(kg.backup_to(&supervisor, &file).await, Err(ServiceError::Forbidden(_))));
    assert!(!file.exists(), "a refused backup writes nothing");
    match kg.store_for_tests().backend() {
        keygate_store::Backend::Sqlite => {
            let bytes = kg.backup_to(&Caller::CLI, &file).await.expect("backup");
            assert!(bytes > 0 && std::fs::metadata(&file).expect("copy").len() == bytes);
            let again = kg.backup_to(&Caller::CLI, &file).await.expect_err("the file exists now");
            assert!(again.to_string().contains("already exists"), "{again}");
        }
        keygate_store::Backend::Postgres => {
            let refused = kg.backup_to(&Caller::CLI, &file).await.expect_err("PostgreSQL has pg_dump");
            assert!(refused.to_string().contains("pg_dump"), "{refused}");
            assert!(!file.exists());
        }
    }
    let _ = std::fs::remove_file(&file);
    kg.ping().await.expect("the database answers");
}
