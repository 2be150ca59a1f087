//! The grant ceiling at the service boundary: every write that can change anyone's powers is a
//! judged store write ([`Keygate::judged`]). The store locks the tenant, reads the powers before
//! and after the write inside its transaction, and asks the domain's rule ([`judge`]) about that
//! outcome; a refusal writes nothing and is audited here with what the actor lacked.

use keygate_domain::{GroupId, Judge, KeyId, Outcome, Subject, TenantId, UserId, judge};
use keygate_store::{Guard, HandsOver, StoreError, StoreResult};

use crate::{Caller, Keygate, ServiceError, ServiceResult};

/// What a judged write may change, and whose secret it hands over.
#[derive(Debug)]
pub(crate) struct Affects {
    pub users: Vec<UserId>,
    pub groups: Vec<GroupId>,
    pub keys: Vec<KeyId>,
    pub hands_over: HandsOver,
}

impl Affects {
    pub(crate) fn user(user: UserId) -> Self {
        Self { users: vec![user], groups: Vec::new(), keys: Vec::new(), hands_over: HandsOver::Nothing }
    }

    pub(crate) fn group(group: GroupId) -> Self {
        Self { users: Vec::new(), groups: vec![group], keys: Vec::new(), hands_over: HandsOver::Nothing }
    }

    pub(crate) fn key(key: KeyId) -> Self {
        Self { users: Vec::new(), groups: Vec::new(), keys: vec![key], hands_over: HandsOver::Nothing }
    }

    pub(crate) fn nothing() -> Self {
        Self { users: Vec::new(), groups: Vec::new(), keys: Vec::new(), hands_over: HandsOver::Nothing }
    }

    #[must_use]
    pub(crate) fn handing_over(mut self, hands_over: HandsOver) -> Self {
        self.hands_over = hands_over;
        self
    }
}

impl Caller {
    /// Who the ceiling judges: the command line holds everything; a console user and a key are
    /// judged on what they hold in the writing transaction, not on what they held at log-in.
    pub(crate) fn judge(&self) -> Judge {
        match self {
            Self::System { .. } => Judge::Everything,
            Self::User { id, .. } => Judge::Subject(Subject::User(*id)),
            Self::Key { key_id, .. } => Judge::Subject(Subject::Key(*key_id)),
        }
    }
}

impl Keygate {
    /// Runs `write` (a store write given the [`Guard`]) judged by the grant ceiling for `caller`.
    /// A refusal is audited as `grant.refused` on `target`, naming what the caller lacks, and
    /// answered [`ServiceError::GrantExceedsActor`]; nothing of the write stays.
    pub(crate) async fn judged<T>(
        &self,
        caller: &Caller,
        tenant: TenantId,
        target: &str,
        affects: Affects,
        write: impl AsyncFnOnce(&Guard<'_>) -> StoreResult<T>,
    ) -> ServiceResult<T> {
        let actor = caller.judge();
        let rule = move |outcome: &Outcome<'_>| judge(actor, outcome);
        let Affects { mut users, groups, mut keys, hands_over } = affects;
        match actor {
            Judge::Subject(Subject::User(u)) => users.push(u),
            Judge::Subject(Subject::Key(k)) => keys.push(k),
            Judge::Everything => {}
        }
        let guard = Guard { users, groups, keys, hands_over, judge: &rule };
        match write(&guard).await {
            Ok(value) => Ok(value),
            Err(StoreError::Refused(refused)) => {
                let audit = caller.audit(tenant, "grant.refused", target).details(refused.message.clone());
                if let Err(e) = self.db().audit().append(&[audit]).await {
                    tracing::error!(error = %e, "writing the audit event of a refused grant failed");
                }
                Err(ServiceError::GrantExceedsActor(refused.message))
            }
            Err(e) => Err(e.into()),
        }
    }
}
