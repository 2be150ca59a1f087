//! The landing page after log-in (`/console/configuration`): what matters today — the Public API
//! on or off, keys by state, calls and refusals today, keys failing, expiring or unused — for
//! members of `Configurator`; the manual's path to the Public API one click away and the menu of
//! the console for everyone. Read-only; no SQL and no rules here.

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use keygate_domain::Timestamp;

use super::{
    Chrome, PUBLIC_API, Session,
    figures::{self, KeyFigures},
    pages::MenuLink,
    render, service_error_page,
};
use crate::AppState;

/// Keys each list of the landing page names at most; the rest are counted ("and 3 more").
pub(crate) const LIST_CAP: usize = 10;

/// A bounded list of keys and how many did not fit.
#[derive(Debug, Default)]
pub(crate) struct KeyList {
    pub keys: Vec<KeyFigures>,
    pub more: usize,
}

impl KeyList {
    fn of(all: impl Iterator<Item = KeyFigures>) -> Self {
        let mut list = Self::default();
        for k in all {
            if list.keys.len() < LIST_CAP {
                list.keys.push(k);
            } else {
                list.more += 1;
            }
        }
        list
    }
}

/// Today at a glance, for members of `Configurator`.
#[derive(Debug, Default)]
pub(crate) struct Today {
    pub api_on: bool,
    /// (state, keys in it), in a fixed order; states with no key are left out.
    pub states: Vec<(&'static str, usize)>,
    pub total_keys: usize,
    pub calls_today: i64,
    pub refused_today: i64,
    pub failing: KeyList,
    pub expiring: KeyList,
    pub unused: KeyList,
}

#[derive(Template)]
#[template(path = "console/home.html")]
pub(crate) struct HomePage {
    pub chrome: Chrome,
    pub today: Option<Today>,
    pub date: String,
    pub public_api: &'static str,
    pub links: Vec<MenuLink>,
    pub expiring_days: i64,
    pub unused_days: i64,
}

const STATES: [&str; 6] = ["active", "disabled", "expired", "revoked", "user inactive", "API off"];

/// The landing page. Any logged-in user; the figures only for members of `Configurator`.
pub(crate) async fn home_page(State(state): State<AppState>, Session(ctx): Session) -> Response {
    let mut chrome = ctx.chrome();
    let today = if chrome.configurator {
        let k = &state.keygate;
        let caller = &ctx.session.caller;
        let tenant = ctx.session.tenant.policy.id;
        let (policy, keys, usage) = match (
            k.tenant_by_id(tenant).await,
            k.list_keys(caller, tenant).await,
            k.key_usage(caller, tenant, figures::DAYS).await,
        ) {
            (Ok(t), Ok(keys), Ok(usage)) => (t.policy, keys, usage),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return service_error_page(&ctx, e),
        };
        let all = figures::of_keys(&keys, &usage, Timestamp::now());
        Some(Today {
            api_on: policy.public_api,
            states: STATES
                .into_iter()
                .map(|s| (s, all.iter().filter(|f| f.status == s).count()))
                .filter(|(_, n)| *n > 0)
                .collect(),
            total_keys: all.len(),
            calls_today: all.iter().map(|f| f.calls_today).sum(),
            refused_today: all.iter().map(|f| f.refused_today).sum(),
            failing: KeyList::of(all.iter().filter(|f| f.refused_today > 0).cloned()),
            expiring: KeyList::of(all.iter().filter(|f| f.expiring.is_some()).cloned()),
            unused: KeyList::of(all.iter().filter(|f| f.unused).cloned()),
        })
    } else {
        None
    };
    chrome.flash = ctx.take_flash(&state).await;
    let links = menu(&chrome);
    render(
        StatusCode::OK,
        &HomePage {
            chrome,
            today,
            date: Timestamp::now().to_date_string(),
            public_api: PUBLIC_API,
            links,
            expiring_days: figures::EXPIRING_WITHIN_DAYS,
            unused_days: figures::UNUSED_AFTER_DAYS,
        },
    )
}

/// The console's pages this user may open, with what each is for.
fn menu(chrome: &Chrome) -> Vec<MenuLink> {
    // System configuration is on the manual's path at the top of the page, so not listed again.
    let mut links = Vec::new();
    if chrome.user_configurator {
        links.push(MenuLink {
            href: "/console/users",
            text: "Users",
            about: "Create users (including programmatic users for integrations); change their groups, units and \
                    passwords; deactivate and reactivate them.",
        });
        links.push(MenuLink {
            href: "/console/groups",
            text: "Groups",
            about: "Groups and their grants: what their members (and the members' keys) may read and write.",
        });
        links.push(MenuLink {
            href: "/console/units",
            text: "Units",
            about: "The units of your company: the {unitId} of the API.",
        });
    }
    if chrome.configurator || chrome.user_configurator {
        links.push(MenuLink {
            href: "/console/audit",
            text: "Audit log",
            about: "Every change and every refused call, by time, action, actor and target; CSV export.",
        });
    }
    if chrome.configurator {
        links.push(MenuLink {
            href: "/console/usage",
            text: "Usage",
            about: "Calls per key today and in 7 days, refusals by reason, last use; charts per day.",
        });
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_the_landing_page_names_at_most_10_keys_and_counts_the_rest() {
        let list = KeyList::of((1..=13).map(figures::tests::sample));
        assert_eq!((list.keys.len(), list.more), (10, 3));
        assert_eq!(list.keys.last().map(|k| k.id), Some(10));
    }
}
