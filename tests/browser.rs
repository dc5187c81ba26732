//! The web interface (SPEC §10) in a real Chromium, driven over WebDriver:
//! each test starts the real `orgboard` binary (fresh data directory, or a
//! fresh PostgreSQL database) and a chromedriver, and works the pages the way
//! a person does, finding controls by their accessible names.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium
//! chromium-driver`; or set `ORGBOARD_CHROMIUM` / `ORGBOARD_CHROMEDRIVER`).
//! Without a chromedriver the tests are reported as ignored (`build.rs` sets
//! `orgboard_no_chromium`), except under CI, where they fail. A failing test
//! leaves a screenshot (and the HTML) of every open browser in
//! `target/browser-screenshots/`, and prints the browsers' console and the
//! server's log.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "browser/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{Backend, DropAt, PASSWORD, Ui, board, poll, poll_for, run};
use serde_json::json;

/// A fresh address, unique across tests and runs.
fn email(who: &str) -> String {
    format!("{who}-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// Set up through the API: an owner, an organization with a board and one
/// list per name (with the given cards).
struct World {
    owner_email: String,
    owner_token: String,
    org_slug: String,
    org_id: String,
    board_id: String,
}

async fn world(ui: &Ui, org_name: &str, board_name: &str, lists: &[(&str, &[&str])]) -> World {
    let s = &ui.server;
    let owner_email = email("owner");
    let token = s.signup("Olive Owner", &owner_email).await;
    let org = s
        .call(
            "POST",
            "/api/v1/orgs",
            &token,
            Some(json!({"name": org_name})),
            201,
        )
        .await;
    let org_id = org["id"].as_str().unwrap().to_owned();
    let board = s
        .call(
            "POST",
            &format!("/api/v1/orgs/{org_id}/boards"),
            &token,
            Some(json!({"name": board_name})),
            201,
        )
        .await;
    let board_id = board["id"].as_str().unwrap().to_owned();
    for (name, cards) in lists {
        let list = s
            .call(
                "POST",
                &format!("/api/v1/orgs/{org_id}/boards/{board_id}/lists"),
                &token,
                Some(json!({"name": name})),
                201,
            )
            .await;
        let list_id = list["id"].as_str().unwrap();
        for title in *cards {
            s.call(
                "POST",
                &format!("/api/v1/orgs/{org_id}/lists/{list_id}/tasks"),
                &token,
                Some(json!({"title": title})),
                201,
            )
            .await;
        }
    }
    World {
        owner_email,
        owner_token: token,
        org_slug: org["slug"].as_str().unwrap().to_owned(),
        org_id,
        board_id,
    }
}

/// The `next` parameter of a link's query, decoded.
fn next_of(href: &str) -> Option<String> {
    let query = href.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
}

/// Logs `email` in through `/login?next=…` and waits for page `page`.
async fn log_in(b: &harness::Browser, email: &str, next: &str, page: &str) {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    b.goto(&format!("/login?{query}")).await;
    b.page("login").await;
    b.fill("Email", email).await;
    b.fill("Password", PASSWORD).await;
    b.click_button("Log in").await;
    b.at(next).await;
    b.page(page).await;
}

// ---------------------------------------------------------------------------

/// The harness itself: Chromium opens pages of the real server (the API
/// documentation and the health check), independently of the web app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn harness_opens_the_api_docs() {
    run(
        "harness_opens_the_api_docs",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let b = ui.browser().await;
            b.goto("/healthz").await;
            let body = b.js("return document.body.innerText;", vec![]).await;
            assert!(
                !body.as_str().unwrap().trim().is_empty(),
                "/healthz shows {body}"
            );
            b.goto("/docs").await;
            // Swagger UI renders the operations of the OpenAPI document.
            poll("Swagger UI to list the sign-up operation", || async {
                let text = b
                    .js("return document.body.innerText;", vec![])
                    .await
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if text.contains("/api/v1/auth/signup") {
                    Ok(())
                } else {
                    Err(format!("page: {}", &text[..text.len().min(200)]))
                }
            })
            .await;
        },
    )
    .await;
}

/// Sign up, create an organization, a board, two lists and three cards, drag
/// cards across and within lists; every drop reaches the server, and a
/// reload shows the same board.
async fn kanban_flow(ui: Arc<Ui>) {
    let b = ui.browser().await;
    let me = email("ada");

    b.goto("/signup").await;
    b.page("signup").await;
    b.fill("Name", "Ada Lovelace").await;
    b.fill("Email", &me).await;
    b.fill("Password", PASSWORD).await;
    b.click_button("Sign up").await;

    // Lands on the personal organization.
    b.page("boards").await;
    let token = ui.server.login(&me).await;
    let orgs = ui
        .server
        .call("GET", "/api/v1/orgs", &token, None, 200)
        .await;
    let personal = orgs["items"][0]["slug"].as_str().unwrap().to_owned();
    b.at(&format!("/o/{personal}")).await;

    // A new organization through the header's dialog.
    b.click_button("New organization").await;
    b.fill("Organization name", "Analytical Engines").await;
    b.click_button("Create organization").await;
    b.heading_is("Analytical Engines").await;
    let orgs = ui
        .server
        .call("GET", "/api/v1/orgs", &token, None, 200)
        .await;
    let org = orgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Analytical Engines")
        .unwrap_or_else(|| panic!("no organization created: {orgs}"));
    let slug = org["slug"].as_str().unwrap().to_owned();
    b.at(&format!("/o/{slug}")).await;
    b.page("boards").await;
    b.heading_is("Analytical Engines").await;
    assert_eq!(
        b.value("Organization").await,
        slug,
        "the switcher shows the new organization"
    );

    // A board, two lists, three cards.
    b.fill("Board name", "Roadmap").await;
    b.click_button("Create board").await;
    b.page("board").await;
    b.heading_is("Roadmap").await;
    let path = b.path().await;
    let board_id = path
        .strip_prefix(&format!("/o/{slug}/b/"))
        .unwrap_or_else(|| panic!("creating a board went to {path}"))
        .to_owned();
    b.add_list("Todo").await;
    b.add_list("Doing").await;
    for title in ["A", "B", "C"] {
        b.add_card("Todo", title).await;
    }
    let expected = board(&[("Todo", &["A", "B", "C"]), ("Doing", &[])]);
    b.board_is(&expected).await;

    // Drags: into an empty list, before a card of the same list, after a
    // card of another list. Each shows at once and reaches the server.
    let moves: [(&str, DropAt<'_>, harness::BoardState); 3] = [
        (
            "B",
            DropAt::EndOf("Doing"),
            board(&[("Todo", &["A", "C"]), ("Doing", &["B"])]),
        ),
        (
            "C",
            DropAt::Before("A"),
            board(&[("Todo", &["C", "A"]), ("Doing", &["B"])]),
        ),
        (
            "A",
            DropAt::After("B"),
            board(&[("Todo", &["C"]), ("Doing", &["B", "A"])]),
        ),
    ];
    for (card, to, expected) in &moves {
        b.drag(card, *to).await;
        b.board_is(expected).await;
        poll(
            &format!("the server to have {expected:?} after dragging {card}"),
            || async {
                let seen = ui.server.board_state(&token, &slug, &board_id).await;
                if &seen == expected {
                    Ok(())
                } else {
                    Err(format!("it has {seen:?}"))
                }
            },
        )
        .await;
    }

    // A reload shows the board as it was left.
    b.reload().await;
    b.page("board").await;
    b.heading_is("Roadmap").await;
    b.board_is(&moves[2].2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn kanban_flow_survives_a_reload() {
    run(
        "kanban_flow_survives_a_reload",
        Backend::Sqlite,
        kanban_flow,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn kanban_flow_survives_a_reload_on_postgres() {
    run(
        "kanban_flow_survives_a_reload_on_postgres",
        Backend::Postgres,
        kanban_flow,
    )
    .await;
}

/// The same moves by keyboard: `Alt+ArrowUp` within a list, `Alt+ArrowRight`
/// to the next list; announced, saved, and still there after a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn cards_move_by_keyboard() {
    run(
        "cards_move_by_keyboard",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(
                &ui,
                "Keys",
                "Keyboard",
                &[("Left", &["K1", "K2"]), ("Right", &[])],
            )
            .await;
            let b = ui.browser().await;
            log_in(
                &b,
                &w.owner_email,
                &format!("/o/{}/b/{}", w.org_slug, w.board_id),
                "board",
            )
            .await;
            b.board_is(&board(&[("Left", &["K1", "K2"]), ("Right", &[])]))
                .await;

            const ALT: &str = "\u{e00a}";
            const UP: &str = "\u{e013}";
            const RIGHT: &str = "\u{e014}";
            b.keys_to_card("K2", &format!("{ALT}{UP}")).await;
            let expected = board(&[("Left", &["K2", "K1"]), ("Right", &[])]);
            b.board_is(&expected).await;
            let announced = b.find("#announce[role=status]").await;
            poll("the move to be announced", || async {
                let text = announced.text().await.map_err(|e| e.to_string())?;
                if text.trim().is_empty() {
                    Err("#announce is empty".into())
                } else {
                    Ok(())
                }
            })
            .await;
            b.keys_to_card("K2", &format!("{ALT}{RIGHT}")).await;
            let expected = board(&[("Left", &["K1"]), ("Right", &["K2"])]);
            b.board_is(&expected).await;
            poll("the server to have the keyboard moves", || async {
                let seen = ui
                    .server
                    .board_state(&w.owner_token, &w.org_id, &w.board_id)
                    .await;
                if seen == expected {
                    Ok(())
                } else {
                    Err(format!("it has {seen:?}"))
                }
            })
            .await;
            b.reload().await;
            b.page("board").await;
            b.board_is(&expected).await;
        },
    )
    .await;
}

/// Two members on the same board in two browsers: a card added in one
/// appears in the other within a second, without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn another_session_sees_a_new_card_without_reload() {
    run(
        "another_session_sees_a_new_card_without_reload",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(&ui, "Shared", "Together", &[("Inbox", &["First"])]).await;
            let s = &ui.server;
            let member_email = email("bob");
            let member_token = s.signup("Bob Member", &member_email).await;
            let invite = s
                .call(
                    "POST",
                    &format!("/api/v1/orgs/{}/invites", w.org_id),
                    &w.owner_token,
                    Some(json!({"email": member_email, "role": "member"})),
                    201,
                )
                .await;
            s.call(
                "POST",
                "/api/v1/invites/accept",
                &member_token,
                Some(json!({"token": invite["token"]})),
                200,
            )
            .await;

            let board_path = format!("/o/{}/b/{}", w.org_slug, w.board_id);
            let (owner, member) = tokio::join!(ui.browser(), ui.browser());
            log_in(&owner, &w.owner_email, &board_path, "board").await;
            log_in(&member, &member_email, &board_path, "board").await;
            let before = board(&[("Inbox", &["First"])]);
            owner.board_is(&before).await;
            member.board_is(&before).await;
            // Let the member's page open its event stream.
            member.idle().await;

            owner.add_card("Inbox", "Hello from Olive").await;
            owner.idle().await;
            let after = board(&[("Inbox", &["First", "Hello from Olive"])]);
            owner.board_is(&after).await;
            poll_for(
                Duration::from_secs(1),
                "the other session to show the new card",
                || async {
                    let seen = member.board_state().await;
                    if seen == after {
                        Ok(())
                    } else {
                        Err(format!("it shows {seen:?}"))
                    }
                },
            )
            .await;
            assert_eq!(member.path().await, board_path, "no navigation happened");
        },
    )
    .await;
}

/// The owner invites an address as viewer on the members page; the link in
/// the email, opened in a fresh browser, leads through sign-up into the
/// organization, where a viewer is offered no `Add card`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn invite_link_from_the_email_signs_up_and_joins_as_the_invited_role() {
    run(
        "invite_link_from_the_email_signs_up_and_joins_as_the_invited_role",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(&ui, "Viewers Club", "Plans", &[("Ideas", &["Look only"])]).await;
            let owner = ui.browser().await;
            log_in(
                &owner,
                &w.owner_email,
                &format!("/o/{}/members", w.org_slug),
                "members",
            )
            .await;
            let guest = email("x");
            owner.fill("Email", &guest).await;
            owner.select("Role", "viewer").await;
            owner.click_button("Invite").await;
            let shown = poll("the accept link on the members page", || async {
                let v = owner.value("Accept link").await;
                if v.contains("/invites/accept?token=") {
                    Ok(v)
                } else {
                    Err(format!("it holds {v:?}"))
                }
            })
            .await;
            owner.button("Copy link").await;

            let link = ui.server.invite_link_mailed_to(&guest).await;
            assert_eq!(shown, link, "the page and the email give the same link");
            let accept_path = link
                .strip_prefix(&ui.server.url(""))
                .unwrap_or_else(|| panic!("the link {link} is not on this server"))
                .to_owned();

            let b = ui.browser().await;
            b.goto(&accept_path).await;
            b.page("accept").await;
            for link in ["Sign up", "Log in"] {
                let href = b
                    .link(link)
                    .await
                    .attr("href")
                    .await
                    .unwrap()
                    .unwrap_or_default();
                assert_eq!(
                    next_of(&href).as_deref(),
                    Some(accept_path.as_str()),
                    "the {link} link {href:?} leads back to the invite"
                );
            }
            b.click_link("Sign up").await;
            b.page("signup").await;
            b.fill("Name", "Xavier Viewer").await;
            b.fill("Email", &guest).await;
            b.fill("Password", PASSWORD).await;
            b.click_button("Sign up").await;

            b.at(&format!("/o/{}", w.org_slug)).await;
            b.page("boards").await;
            b.heading_is("Viewers Club").await;
            let options = b
                .js(
                    "return [...arguments[0].options].map(o => o.value);",
                    vec![serde_json::to_value(b.field("Organization").await).unwrap()],
                )
                .await;
            assert!(
                options.as_array().unwrap().contains(&json!(w.org_slug)),
                "the organization switcher offers {options}, not {}",
                w.org_slug
            );
            assert_eq!(
                b.count_visible_buttons("Create board").await,
                0,
                "a viewer is offered Create board"
            );

            b.click_link("Plans").await;
            b.page("board").await;
            b.heading_is("Plans").await;
            b.board_is(&board(&[("Ideas", &["Look only"])])).await;
            assert_eq!(
                b.count_buttons("Add card").await,
                0,
                "a viewer is offered Add card"
            );
            assert_eq!(
                b.count_buttons("Add list").await,
                0,
                "a viewer is offered Add list"
            );

            // The server agrees: a viewer.
            let token = ui.server.login(&guest).await;
            let members = ui
                .server
                .call(
                    "GET",
                    &format!("/api/v1/orgs/{}/members", w.org_id),
                    &token,
                    None,
                    200,
                )
                .await;
            let roles: Vec<_> = members["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m.to_string().contains(&guest))
                .map(|m| m["role"].clone())
                .collect();
            assert_eq!(roles, [json!("viewer")], "members: {members}");
        },
    )
    .await;
}

/// A card titled like markup shows exactly those characters: no element is
/// made of it and no script runs, as added and after a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn user_text_is_rendered_as_text() {
    run(
        "user_text_is_rendered_as_text",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            const TITLE: &str = "<img src=x onerror=alert(1)>";
            let w = world(&ui, "Markup", "Escapes", &[("Tricky", &[])]).await;
            let b = ui.browser().await;
            log_in(
                &b,
                &w.owner_email,
                &format!("/o/{}/b/{}", w.org_slug, w.board_id),
                "board",
            )
            .await;
            b.add_card("Tricky", TITLE).await;
            b.idle().await;
            for when in ["as added", "after a reload"] {
                let card = b.card(TITLE).await;
                let title = card
                    .find(fantoccini::Locator::Css(".card-title"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert_eq!(title, TITLE, "{when}");
                let images = card
                    .find_all(fantoccini::Locator::Css("img"))
                    .await
                    .unwrap();
                assert!(images.is_empty(), "{when}: the title became an <img>");
                assert_eq!(b.native_alert().await, None, "{when}: a script ran");
                b.reload().await;
                b.page("board").await;
            }
            assert_eq!(
                ui.server
                    .board_state(&w.owner_token, &w.org_id, &w.board_id)
                    .await,
                board(&[("Tricky", &[TITLE])]),
                "the title was saved as typed"
            );
        },
    )
    .await;
}

/// The card dialog's Save after someone else changed the card: `412`, shown
/// as a conflict with their title, nothing overwritten until the user picks;
/// `Use their version` puts their title in the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn stale_edit_shows_the_conflict() {
    run(
        "stale_edit_shows_the_conflict",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(&ui, "Edits", "Contested", &[("Work", &["Original title"])]).await;
            let view = ui
                .server
                .call(
                    "GET",
                    &format!("/api/v1/orgs/{}/boards/{}", w.org_id, w.board_id),
                    &w.owner_token,
                    None,
                    200,
                )
                .await;
            let task_id = view["lists"][0]["tasks"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let task_path = format!("/api/v1/orgs/{}/tasks/{task_id}", w.org_id);

            let b = ui.browser().await;
            log_in(
                &b,
                &w.owner_email,
                &format!("/o/{}/b/{}", w.org_slug, w.board_id),
                "board",
            )
            .await;
            b.click_card("Original title").await;
            let dialog = b.find("dialog#card-dialog[open]").await;
            assert_eq!(b.value_in(Some(&dialog), "Title").await, "Original title");

            // Someone else renames it meanwhile.
            ui.server
                .call(
                    "PATCH",
                    &task_path,
                    &w.owner_token,
                    Some(json!({"title": "Their title"})),
                    200,
                )
                .await;

            b.fill_in(Some(&dialog), "Title", "My title").await;
            b.click_button_in(Some(&dialog), "Save").await;
            b.alert_with(Some(&dialog), &["changed by someone else", "Their title"])
                .await;
            b.button_in(Some(&dialog), "Use their version").await;
            b.button_in(Some(&dialog), "Save mine anyway").await;
            let task = ui
                .server
                .call("GET", &task_path, &w.owner_token, None, 200)
                .await;
            assert_eq!(
                task["title"], "Their title",
                "nothing is overwritten before the user picks"
            );

            b.click_button_in(Some(&dialog), "Use their version").await;
            poll("their title in the Title field", || async {
                let v = b.value_in(Some(&dialog), "Title").await;
                if v == "Their title" {
                    Ok(())
                } else {
                    Err(format!("it holds {v:?}"))
                }
            })
            .await;
            let task = ui
                .server
                .call("GET", &task_path, &w.owner_token, None, 200)
                .await;
            assert_eq!(task["title"], "Their title");
        },
    )
    .await;
}

/// The board's filters are in the URL: choosing one narrows the cards and
/// sets its query parameter, and a reload keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn filters_live_in_the_url() {
    run(
        "filters_live_in_the_url",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(
                &ui,
                "Sieve",
                "Filtered",
                &[("All", &["Alpha", "Beta", "Gamma"])],
            )
            .await;
            let view = ui
                .server
                .call(
                    "GET",
                    &format!("/api/v1/orgs/{}/boards/{}", w.org_id, w.board_id),
                    &w.owner_token,
                    None,
                    200,
                )
                .await;
            for (task, priority) in view["lists"][0]["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .zip(["high", "low", "high"])
            {
                ui.server
                    .call(
                        "PATCH",
                        &format!(
                            "/api/v1/orgs/{}/tasks/{}",
                            w.org_id,
                            task["id"].as_str().unwrap()
                        ),
                        &w.owner_token,
                        Some(json!({"priority": priority})),
                        200,
                    )
                    .await;
            }
            let board_path = format!("/o/{}/b/{}", w.org_slug, w.board_id);
            let b = ui.browser().await;
            log_in(&b, &w.owner_email, &board_path, "board").await;
            b.board_is(&board(&[("All", &["Alpha", "Beta", "Gamma"])]))
                .await;

            b.select("Priority", "high").await;
            b.board_is(&board(&[("All", &["Alpha", "Gamma"])])).await;
            b.at(&format!("{board_path}?priority=high")).await;

            b.fill("Search", "Gam").await;
            b.board_is(&board(&[("All", &["Gamma"])])).await;
            poll("q=Gam in the URL", || async {
                let path = b.path().await;
                if path.contains("priority=high") && path.contains("q=Gam") {
                    Ok(())
                } else {
                    Err(format!("at {path}"))
                }
            })
            .await;

            b.reload().await;
            b.page("board").await;
            b.board_is(&board(&[("All", &["Gamma"])])).await;
            assert_eq!(
                b.value("Priority").await,
                "high",
                "the Priority filter after a reload"
            );
            assert_eq!(
                b.value("Search").await,
                "Gam",
                "the Search filter after a reload"
            );
        },
    )
    .await;
}

/// A change by someone else arriving live (here: a new list) does not wipe
/// what the user is typing into a list's `Card title`, nor move the focus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn typing_survives_a_live_update() {
    run(
        "typing_survives_a_live_update",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(&ui, "Typing", "Busy", &[("Inbox", &["Existing"])]).await;
            let b = ui.browser().await;
            log_in(
                &b,
                &w.owner_email,
                &format!("/o/{}/b/{}", w.org_slug, w.board_id),
                "board",
            )
            .await;
            b.board_is(&board(&[("Inbox", &["Existing"])])).await;
            let inbox = b.list("Inbox").await;
            b.fill_in(Some(&inbox), "Card title", "Half-typed").await;

            // Another session adds a list; it shows up live.
            ui.server
                .call(
                    "POST",
                    &format!("/api/v1/orgs/{}/boards/{}/lists", w.org_id, w.board_id),
                    &w.owner_token,
                    Some(json!({"name": "Later"})),
                    201,
                )
                .await;
            b.board_is(&board(&[("Inbox", &["Existing"]), ("Later", &[])]))
                .await;

            let inbox = b.list("Inbox").await;
            let field = b.field_in(Some(&inbox), "Card title").await;
            assert_eq!(
                field.prop("value").await.unwrap().unwrap_or_default(),
                "Half-typed",
                "the text typed into Card title of Inbox"
            );
            let focused = b
                .js(
                    "return document.activeElement === arguments[0];",
                    vec![serde_json::to_value(&field).unwrap()],
                )
                .await;
            assert_eq!(focused, json!(true), "Card title of Inbox keeps the focus");
        },
    )
    .await;
}
