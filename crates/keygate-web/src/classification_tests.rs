//! One classification of service errors, checked across the surfaces that use it: the Public
//! API's problem documents, the console's pages and the problem-code catalogue. A module of its
//! own so that the catalogue ([`crate::problem_code`]) does not import the console it serves.

use keygate_service::{BadRequest, Budget, FieldError, ServiceError};

use crate::{RequestId, problem_code::*};

/// The match is exhaustive: a new code does not compile until it has an arm, and its arm
/// names its place in `ALL`, which does not compile (index out of bounds) until `ALL` holds it.
#[test]
fn all_holds_every_problem_code_once() {
    use ProblemCode::*;
    const R: usize = REFUSALS;
    let listed = |c: ProblemCode| match c {
        Refusal(r) => ProblemCode::ALL[r.index()],
        InvalidParameter => ProblemCode::ALL[R],
        UnknownParameter => ProblemCode::ALL[R + 1],
        InvalidFilter => ProblemCode::ALL[R + 2],
        UnknownColumn => ProblemCode::ALL[R + 3],
        TypeMismatch => ProblemCode::ALL[R + 4],
        IdempotencyKeyReused => ProblemCode::ALL[R + 5],
        UnreadableUnit => ProblemCode::ALL[R + 6],
        Forbidden => ProblemCode::ALL[R + 7],
        GrantExceedsActor => ProblemCode::ALL[R + 8],
        NotFound => ProblemCode::ALL[R + 9],
        MethodNotAllowed => ProblemCode::ALL[R + 10],
        Conflict => ProblemCode::ALL[R + 11],
        BodyTooLarge => ProblemCode::ALL[R + 12],
        PageTooLarge => ProblemCode::ALL[R + 13],
        InvalidFields => ProblemCode::ALL[R + 14],
        InvalidInput => ProblemCode::ALL[R + 15],
        TooManyQueries => ProblemCode::ALL[R + 16],
        PageMemoryBusy => ProblemCode::ALL[R + 17],
        QueryTimeout => ProblemCode::ALL[R + 18],
        InternalError => ProblemCode::ALL[R + 19],
        Busy => ProblemCode::ALL[R + 20],
        Unavailable => ProblemCode::ALL[R + 21],
        PreconditionFailed => ProblemCode::ALL[R + 22],
    };
    for code in ProblemCode::ALL {
        assert_eq!(listed(code), code, "{code:?} is not at its own place in ALL");
        assert_eq!(ProblemCode::from_code(code.code()), Some(code), "{}: codes are distinct", code.code());
    }
    assert_eq!(ProblemCode::ALL.len(), 38, "15 refusals and 23 other codes");
}

#[test]
fn every_code_has_a_status_a_title_a_meaning_and_advice() {
    for code in ProblemCode::ALL {
        assert!((400..=599).contains(&code.status()), "{}", code.code());
        for text in [code.title(), code.about(), code.advice()] {
            assert!(text.len() >= 8, "{}: `{text}`", code.code());
        }
    }
}

const ID: RequestId = RequestId::Own { prefix: 0xabcd, n: 7 };
const CAUSE: &str = "connection to db.internal:5432 failed: password authentication failed for user keygate";

/// The status both surfaces must answer `e` with. Exhaustive: a new kind of service error does
/// not compile until it has a status here (and then gets its test below).
fn expected_status(e: &ServiceError) -> u16 {
    match e {
        ServiceError::Invalid(_) | ServiceError::InvalidFields(_) => 422,
        ServiceError::NotFound(_) => 404,
        ServiceError::Conflict(_) => 409,
        ServiceError::Forbidden(_) | ServiceError::GrantExceedsActor(_) | ServiceError::InsufficientPermission(_) => {
            403
        }
        ServiceError::BadRequest { .. } => 400,
        ServiceError::TooLarge(_) => 413,
        ServiceError::Busy(_) => 503,
        ServiceError::Overloaded { budget: Budget::KeyQueries, .. } => 429,
        ServiceError::Overloaded { budget: Budget::PageMemory | Budget::QueryTime, .. } => 503,
        ServiceError::Store(_) | ServiceError::Internal(_) => 500,
    }
}

/// The Public API's problem and the console's page for the error `make` makes: both have
/// the expected status, and the same `Retry-After`.
fn same_status_in_the_console_and_the_api(make: impl Fn() -> ServiceError) {
    let expected = expected_status(&make());
    let api = crate::problem::Problem::from_service(make(), ID).into_response();
    let page = crate::console::error_page(None, ID, make());
    assert_eq!(api.status().as_u16(), expected, "the Public API, for {:?}", make());
    assert_eq!(page.status().as_u16(), expected, "the console, for {:?}", make());
    let retry = |r: &axum::response::Response| r.headers().get("retry-after").cloned();
    assert_eq!(retry(&api), retry(&page), "Retry-After, for {:?}", make());
}

macro_rules! same_status {
    ($($name:ident: $e:expr;)*) => {$(
        #[test]
        fn $name() {
            same_status_in_the_console_and_the_api(|| $e);
        }
    )*};
}

use axum::response::IntoResponse as _;

same_status! {
    invalid_input_is_422_in_the_console_and_the_api: ServiceError::Invalid("the email is not valid".into());
    invalid_fields_are_422_in_the_console_and_the_api: ServiceError::InvalidFields(vec![FieldError {
        field: "name".into(),
        message: "too long".into(),
    }]);
    not_found_is_404_in_the_console_and_the_api: ServiceError::NotFound("the user".into());
    a_conflict_is_409_in_the_console_and_the_api: ServiceError::Conflict("the email is taken".into());
    forbidden_is_403_in_the_console_and_the_api: ServiceError::Forbidden("only Configurators".into());
    a_grant_beyond_the_actor_is_403_in_the_console_and_the_api:
        ServiceError::GrantExceedsActor("you lack jobs:write:all".into());
    insufficient_permission_is_403_in_the_console_and_the_api:
        ServiceError::InsufficientPermission("needs jobs:read".into());
    a_bad_request_is_400_in_the_console_and_the_api:
        ServiceError::BadRequest { kind: BadRequest::InvalidFilter, detail: "at 3".into() };
    too_large_is_413_in_the_console_and_the_api: ServiceError::TooLarge("one row is over 1 MiB".into());
    busy_is_503_with_retry_after_in_the_console_and_the_api: ServiceError::Busy("every slot is taken".into());
    too_many_queries_is_429_in_the_console_and_the_api: ServiceError::Overloaded {
        budget: Budget::KeyQueries,
        detail: "2 queries run".into(),
        retry_after_secs: 1,
    };
    a_page_memory_overload_is_503_in_the_console_and_the_api: ServiceError::Overloaded {
        budget: Budget::PageMemory,
        detail: "64 MiB taken".into(),
        retry_after_secs: 2,
    };
    a_query_timeout_is_503_in_the_console_and_the_api: ServiceError::Overloaded {
        budget: Budget::QueryTime,
        detail: "over 5000 ms".into(),
        retry_after_secs: 3,
    };
    a_store_failure_is_500_in_the_console_and_the_api:
        ServiceError::Store(keygate_service::StoreError::Corrupt(CAUSE.into()));
    an_internal_error_is_500_in_the_console_and_the_api: ServiceError::Internal(CAUSE.into());
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A console form showed a store or internal error's own text to the person.
#[tokio::test]
async fn no_internal_cause_reaches_a_console_page_or_a_problem_but_the_request_id_does() {
    for make in [
        || ServiceError::Internal(CAUSE.into()),
        || ServiceError::Store(keygate_service::StoreError::Corrupt(CAUSE.into())),
    ] {
        let page = body_text(crate::console::error_page(None, ID, make())).await;
        let problem = body_text(crate::problem::Problem::from_service(make(), ID).into_response()).await;
        for text in [page, problem] {
            assert!(!text.contains("db.internal") && !text.contains("password authentication"), "{text}");
            assert!(!text.contains("inconsistent"), "the store error's own words: {text}");
            assert!(text.contains("abcd") && text.contains(&ID.to_string()), "the request id: {text}");
        }
    }
}

#[test]
fn an_internal_cause_is_never_in_the_detail_but_the_request_id_is() {
    let id = ID;
    let c = classify(ServiceError::Internal(CAUSE.to_owned()), id);
    assert_eq!(c.code, ProblemCode::InternalError);
    assert!(!c.detail.contains("db.internal") && !c.detail.contains("password"), "{}", c.detail);
    assert!(c.detail.contains(&id.to_string()), "{}", c.detail);
}
