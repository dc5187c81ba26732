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
// One `ignore` at most: with neither, the Chromium reason is given.
#[cfg_attr(
    all(orgboard_no_postgres, not(orgboard_no_chromium)),
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

// ---------------------------------------------------------------------------
// Sessions, permissions, outages, comments, list drags, small screens.

/// Someone else joins `w`'s organization with `role` (sign-up, invite,
/// accept, through the API): (email, access token, user id).
async fn join(ui: &Ui, w: &World, name: &str, role: &str) -> (String, String, String) {
    let s = &ui.server;
    let who = email(&name.to_lowercase().replace(' ', "-"));
    let token = s.signup(name, &who).await;
    let invite = s
        .call(
            "POST",
            &format!("/api/v1/orgs/{}/invites", w.org_id),
            &w.owner_token,
            Some(json!({"email": who, "role": role})),
            201,
        )
        .await;
    s.call(
        "POST",
        "/api/v1/invites/accept",
        &token,
        Some(json!({"token": invite["token"]})),
        200,
    )
    .await;
    let me = s.call("GET", "/api/v1/me", &token, None, 200).await;
    let id = me["id"].as_str().unwrap().to_owned();
    (who, token, id)
}

impl World {
    fn board_path(&self) -> String {
        format!("/o/{}/b/{}", self.org_slug, self.board_id)
    }

    /// The id of the card titled `title` (through the API).
    async fn task_id(&self, ui: &Ui, title: &str) -> String {
        let view = ui
            .server
            .call(
                "GET",
                &format!("/api/v1/orgs/{}/boards/{}", self.org_id, self.board_id),
                &self.owner_token,
                None,
                200,
            )
            .await;
        view["lists"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["tasks"].as_array().unwrap())
            .find(|t| t["title"] == title)
            .unwrap_or_else(|| panic!("no card {title:?} on the board: {view}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits until the server has the board `expected`.
    async fn server_has(&self, ui: &Ui, expected: &harness::BoardState) {
        poll(&format!("the server to have {expected:?}"), || async {
            let seen = ui
                .server
                .board_state(&self.owner_token, &self.org_id, &self.board_id)
                .await;
            if &seen == expected {
                Ok(())
            } else {
                Err(format!("it has {seen:?}"))
            }
        })
        .await;
    }
}

/// Marks the current document, to tell later that it was not reloaded.
async fn mark_document(b: &harness::Browser) {
    b.js("window.__orgboardTestMark = 'same document';", vec![])
        .await;
}

async fn assert_same_document(b: &harness::Browser) {
    let mark = b
        .js("return window.__orgboardTestMark || null;", vec![])
        .await;
    assert_eq!(mark, json!("same document"), "the page was reloaded");
}

/// Waits until the board page's event stream is open (`Live`).
async fn live(b: &harness::Browser) {
    b.find(".live-state.live").await;
}

/// Waits until the server refuses `token` (an access token) as expired.
async fn refused(ui: &Ui, token: &str) {
    poll_for(
        Duration::from_secs(15),
        "the access token to expire",
        || async {
            match ui.server.api("GET", "/api/v1/me", Some(token), None).await {
                (401, _) => Ok(()),
                (status, body) => Err(format!("GET /me answered {status}: {body}")),
            }
        },
    )
    .await;
}

/// A member has the board open; the owner removes them from the
/// organization through the API. The page says so within a few seconds,
/// without a reload, and shows the board no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn a_removed_member_is_told_and_leaves_the_board() {
    run(
        "a_removed_member_is_told_and_leaves_the_board",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(&ui, "Leavers", "Shared plans", &[("Inbox", &["Stay"])]).await;
            let (member_email, _, member_id) = join(&ui, &w, "Bob Member", "member").await;
            let b = ui.browser().await;
            log_in(&b, &member_email, &w.board_path(), "board").await;
            b.board_is(&board(&[("Inbox", &["Stay"])])).await;
            live(&b).await;
            mark_document(&b).await;

            ui.server
                .call(
                    "DELETE",
                    &format!("/api/v1/orgs/{}/members/{member_id}", w.org_id),
                    &w.owner_token,
                    None,
                    204,
                )
                .await;
            b.alert_with(None, &["no longer a member"]).await;
            assert_same_document(&b).await;
            assert_eq!(b.path().await, w.board_path(), "no navigation happened");
            assert_eq!(
                b.board_state().await,
                board(&[]),
                "the board is still shown"
            );
        },
    )
    .await;
}

/// The board is open; the owner deletes it through the API; the page says
/// so, without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn a_board_deleted_while_open_says_so() {
    run(
        "a_board_deleted_while_open_says_so",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(&ui, "Ephemeral", "Doomed", &[("Inbox", &["Soon gone"])]).await;
            let b = ui.browser().await;
            log_in(&b, &w.owner_email, &w.board_path(), "board").await;
            b.board_is(&board(&[("Inbox", &["Soon gone"])])).await;
            live(&b).await;
            mark_document(&b).await;

            ui.server
                .call(
                    "DELETE",
                    &format!("/api/v1/orgs/{}/boards/{}", w.org_id, w.board_id),
                    &w.owner_token,
                    None,
                    204,
                )
                .await;
            b.alert_with(None, &["This board was deleted."]).await;
            assert_same_document(&b).await;
            assert_eq!(b.board_state().await, board(&[]), "the lists are gone");
            b.link("Back to the boards").await;
        },
    )
    .await;
}

/// With a one-second access token (the smallest allowed), an action after
/// the token expired still works: the app renews the session through its
/// HttpOnly cookie, without showing the login page, and its event stream
/// (which ends with each token) reconnects about once per token rather than
/// in a tight loop with the spent one. Once that session is
/// revoked (logged out elsewhere with the cookie's refresh token) and the
/// last token expired, the next action leads to `/login?next=<the board>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn an_expired_access_token_is_renewed_silently() {
    harness::run_with(
        "an_expired_access_token_is_renewed_silently",
        Backend::Sqlite,
        &[("ORGBOARD_ACCESS_TOKEN_TTL_SECS", "1")],
        |ui: Arc<Ui>| async move {
            let mut w = world(&ui, "Short lived", "Tokens", &[("Inbox", &[])]).await;
            let b = ui.browser().await;
            log_in(&b, &w.owner_email, &w.board_path(), "board").await;
            mark_document(&b).await;
            // Count the event streams the page opens from now on.
            b.js(
                "window.__streams = 0;
                 const Original = window.EventSource;
                 window.EventSource = function (...args) {
                   window.__streams += 1;
                   return new Original(...args);
                 };
                 window.EventSource.CLOSED = Original.CLOSED;",
                vec![],
            )
            .await;
            let counting = std::time::Instant::now();
            // Issued after the page's token: it expires no earlier.
            let probe = ui.server.login(&w.owner_email).await;
            refused(&ui, &probe).await;
            // A stream ends with its token; the page renews the token before
            // it reconnects, rather than retrying with the spent one.
            let streams = b.js("return window.__streams;", vec![]).await;
            let bound = 2 + 2 * counting.elapsed().as_secs();
            assert!(
                streams.as_u64().unwrap() <= bound,
                "the page opened {streams} event streams in {:?} (at most {bound} expected)",
                counting.elapsed()
            );

            b.add_card("Inbox", "After expiry").await;
            w.owner_token = ui.server.login(&w.owner_email).await;
            w.server_has(&ui, &board(&[("Inbox", &["After expiry"])]))
                .await;
            assert_eq!(b.path().await, w.board_path(), "no login page");
            assert_same_document(&b).await;

            // Log the browser's session out elsewhere, with the refresh
            // token of its cookie.
            let cookies = b
                .cdp(
                    "Network.getCookies",
                    json!({"urls": [ui.server.url("/api/v1/auth/refresh")]}),
                )
                .await;
            let refresh = cookies["cookies"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "orgboard_refresh")
                .unwrap_or_else(|| panic!("no refresh cookie: {cookies}"));
            assert_eq!(refresh["httpOnly"], json!(true), "{refresh}");
            let (status, body) = ui
                .server
                .api(
                    "POST",
                    "/api/v1/auth/logout",
                    None,
                    Some(json!({"refresh_token": refresh["value"]})),
                )
                .await;
            assert_eq!(status, 204, "logout: {body}");
            let probe = ui.server.login(&w.owner_email).await;
            refused(&ui, &probe).await;
            assert_eq!(b.path().await, w.board_path(), "left the board by itself");

            let inbox = b.list("Inbox").await;
            b.fill_in(Some(&inbox), "Card title", "Too late").await;
            b.click_button_in(Some(&inbox), "Add card").await;
            poll("the login page, leading back to the board", || async {
                let path = b.path().await;
                if path.starts_with("/login?")
                    && next_of(&path).as_deref() == Some(w.board_path().as_str())
                {
                    Ok(())
                } else {
                    Err(format!("at {path}"))
                }
            })
            .await;
            b.page("login").await;
            w.owner_token = ui.server.login(&w.owner_email).await;
            assert_eq!(
                ui.server
                    .board_state(&w.owner_token, &w.org_id, &w.board_id)
                    .await,
                board(&[("Inbox", &["After expiry"])]),
                "nothing was saved without a session"
            );
        },
    )
    .await;
}

/// The server goes away while a card is being added: a banner says the
/// server cannot be reached and the typed title stays. Once the server is
/// back (same port and data), `Add card` again creates the card, once.
async fn server_down(ui: Arc<Ui>) {
    const TITLE: &str = "Typed while offline";
    let w = world(&ui, "Outage", "Unplugged", &[("Inbox", &["Before"])]).await;
    let b = ui.browser().await;
    log_in(&b, &w.owner_email, &w.board_path(), "board").await;
    b.board_is(&board(&[("Inbox", &["Before"])])).await;
    live(&b).await;
    let banner = b.find("#banner[role=alert]").await;
    assert!(
        !banner.is_displayed().await.unwrap(),
        "a banner at the start"
    );

    ui.server.stop().await;
    let inbox = b.list("Inbox").await;
    b.fill_in(Some(&inbox), "Card title", TITLE).await;
    b.click_button_in(Some(&inbox), "Add card").await;
    let banner_says = |needle: &'static str| {
        let banner = banner.clone();
        async move {
            let shown = banner.is_displayed().await.map_err(|e| e.to_string())?;
            let text = banner.text().await.map_err(|e| e.to_string())?;
            if shown && text.contains(needle) {
                Ok(())
            } else {
                Err(format!("#banner shown: {shown}, says {text:?}"))
            }
        }
    };
    poll("the banner", || banner_says("Cannot reach the server")).await;
    assert_eq!(b.value_in(Some(&inbox), "Card title").await, TITLE);
    // The retries (about 7.5 s of backoff) give up; the text stays.
    poll_for(Duration::from_secs(20), "the retries to give up", || {
        banner_says("not saved")
    })
    .await;
    assert_eq!(b.value_in(Some(&inbox), "Card title").await, TITLE);

    ui.server.restart().await;
    b.click_button_in(Some(&inbox), "Add card").await;
    let expected = board(&[("Inbox", &["Before", TITLE])]);
    b.board_is(&expected).await;
    poll("the banner to go", || async {
        match banner.is_displayed().await {
            Ok(false) => Ok(()),
            other => Err(format!("#banner displayed: {other:?}")),
        }
    })
    .await;
    assert_eq!(b.value_in(Some(&inbox), "Card title").await, "");
    w.server_has(&ui, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn a_server_that_is_down_shows_a_banner_and_keeps_the_typing() {
    run(
        "a_server_that_is_down_shows_a_banner_and_keeps_the_typing",
        Backend::Sqlite,
        server_down,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
// One `ignore` at most: with neither, the Chromium reason is given.
#[cfg_attr(
    all(orgboard_no_postgres, not(orgboard_no_chromium)),
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn a_server_that_is_down_shows_a_banner_and_keeps_the_typing_on_postgres() {
    run(
        "a_server_that_is_down_shows_a_banner_and_keeps_the_typing_on_postgres",
        Backend::Postgres,
        server_down,
    )
    .await;
}

/// The comment count on a card, as the board shows it (0 without a badge).
async fn comment_badge(b: &harness::Browser, task_id: &str) -> Result<String, String> {
    let v = b
        .try_js(
            "const c = document.querySelector(`li.card[data-task-id=\"${arguments[0]}\"]`);
             if (!c) return 'no card';
             const badge = c.querySelector('.badge.comments');
             return badge ? badge.getAttribute('aria-label') : 'no badge';",
            vec![json!(task_id)],
        )
        .await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

/// In the card dialog a comment is added (the card on the board then shows
/// one comment), edited, and deleted after confirming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn comments_are_added_edited_and_deleted_in_the_card_dialog() {
    run(
        "comments_are_added_edited_and_deleted_in_the_card_dialog",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(&ui, "Talkers", "Discussed", &[("Inbox", &["Topic"])]).await;
            let task_id = w.task_id(&ui, "Topic").await;
            let comments_path = format!("/api/v1/orgs/{}/tasks/{task_id}/comments", w.org_id);
            let bodies = || async {
                let page = ui
                    .server
                    .call("GET", &comments_path, &w.owner_token, None, 200)
                    .await;
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["body"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            };
            let b = ui.browser().await;
            log_in(&b, &w.owner_email, &w.board_path(), "board").await;
            live(&b).await;
            assert_eq!(comment_badge(&b, &task_id).await.unwrap(), "no badge");

            b.click_card("Topic").await;
            let dialog = b.find("dialog#card-dialog[open]").await;
            b.fill_in(Some(&dialog), "Comment", "First thought").await;
            b.click_button_in(Some(&dialog), "Add comment").await;
            let shown = |expected: &'static str| {
                let dialog = dialog.clone();
                let b = b.clone();
                async move {
                    let texts = b
                        .try_js(
                            "return [...arguments[0].querySelectorAll('#comments > li')]
                               .map(li => li.textContent.replace(/\\s+/g, ' ').trim());",
                            vec![serde_json::to_value(&dialog).unwrap()],
                        )
                        .await?;
                    let texts: Vec<String> = serde_json::from_value(texts).unwrap();
                    if texts.len() == 1 && texts[0].contains(expected) {
                        Ok(texts)
                    } else {
                        Err(format!("the comments show {texts:?}"))
                    }
                }
            };
            poll("the new comment in the dialog", || shown("First thought")).await;
            assert_eq!(
                b.value_in(Some(&dialog), "Comment").await,
                "",
                "the field is emptied"
            );
            poll("the card to show one comment", || async {
                match comment_badge(&b, &task_id).await? {
                    s if s == "1 comments" => Ok(()),
                    s => Err(s),
                }
            })
            .await;
            assert_eq!(bodies().await, ["First thought"]);

            b.click_button_in(Some(&dialog), "Edit comment").await;
            b.fill_in(Some(&dialog), "Edit comment", "Second thought")
                .await;
            b.click_button_in(Some(&dialog), "Save comment").await;
            let texts = poll("the edited comment", || shown("Second thought")).await;
            assert!(texts[0].contains("(edited)"), "{texts:?}");
            assert_eq!(bodies().await, ["Second thought"]);

            b.click_button_in(Some(&dialog), "Delete comment").await;
            let confirm = b.find("dialog.confirm[open]").await;
            b.click_button_in(Some(&confirm), "Delete comment").await;
            poll("the comment to go", || shown("No comments yet.")).await;
            assert!(bodies().await.is_empty(), "the comment is still saved");
            poll("the card to show no comments", || async {
                match comment_badge(&b, &task_id).await? {
                    s if s == "no badge" => Ok(()),
                    s => Err(s),
                }
            })
            .await;
        },
    )
    .await;
}

/// A `member` sees the owner's card (not assigned to them) read-only: the
/// dialog's `Title` is disabled, there is no `Save`; dragging it sends no
/// move. Their own card can be dragged and edited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn a_member_cannot_drag_or_edit_someone_elses_card() {
    run(
        "a_member_cannot_drag_or_edit_someone_elses_card",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(
                &ui,
                "Crew",
                "Shared",
                &[("Todo", &["Olive's card"]), ("Done", &[])],
            )
            .await;
            let (member_email, _, _) = join(&ui, &w, "Bob Member", "member").await;
            let b = ui.browser().await;
            log_in(&b, &member_email, &w.board_path(), "board").await;
            b.add_card("Todo", "Bob's card").await;
            let start = board(&[("Todo", &["Olive's card", "Bob's card"]), ("Done", &[])]);
            w.server_has(&ui, &start).await;

            b.click_card("Olive's card").await;
            let dialog = b.find("dialog#card-dialog[open]").await;
            let title = b.field_in(Some(&dialog), "Title").await;
            assert!(!title.is_enabled().await.unwrap(), "Title is editable");
            assert_eq!(b.count_visible_buttons_in(&dialog, "Save").await, 0);
            assert_eq!(b.count_visible_buttons_in(&dialog, "Delete card").await, 0);
            b.click_button_in(Some(&dialog), "Close").await;
            poll("the dialog to close", || async {
                let open = b
                    .try_js("return !!document.querySelector('dialog[open]');", vec![])
                    .await?;
                if open == json!(false) {
                    Ok(())
                } else {
                    Err("a dialog is open".into())
                }
            })
            .await;

            // Every request the page makes from now on.
            b.js(
                "window.__requests = [];
                 const send = window.fetch;
                 window.fetch = (...args) => {
                   window.__requests.push(String(args[0]));
                   return send(...args);
                 };",
                vec![],
            )
            .await;
            b.drag("Olive's card", DropAt::EndOf("Done")).await;
            // Their own card moves (after the refused drag, so a move sent
            // by that one would be recorded first).
            b.drag("Bob's card", DropAt::EndOf("Done")).await;
            let moved = board(&[("Todo", &["Olive's card"]), ("Done", &["Bob's card"])]);
            b.board_is(&moved).await;
            w.server_has(&ui, &moved).await;
            let bob = w.task_id(&ui, "Bob's card").await;
            let moves: Vec<String> =
                serde_json::from_value(b.js("return window.__requests;", vec![]).await).unwrap();
            let moves: Vec<&String> = moves.iter().filter(|u| u.ends_with("/move")).collect();
            assert_eq!(moves.len(), 1, "moves sent: {moves:?}");
            assert!(moves[0].contains(&bob), "moves sent: {moves:?}");

            b.click_card("Bob's card").await;
            let dialog = b.find("dialog#card-dialog[open]").await;
            assert!(
                b.field_in(Some(&dialog), "Title")
                    .await
                    .is_enabled()
                    .await
                    .unwrap()
            );
            b.fill_in(Some(&dialog), "Title", "Bob's card, edited")
                .await;
            b.click_button_in(Some(&dialog), "Save").await;
            let edited = board(&[
                ("Todo", &["Olive's card"]),
                ("Done", &["Bob's card, edited"]),
            ]);
            b.board_is(&edited).await;
            w.server_has(&ui, &edited).await;
        },
    )
    .await;
}

/// The first list, dragged by its handle past the second, goes after it:
/// on the page, on the server, and after a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn lists_are_reordered_by_dragging_their_handle() {
    run(
        "lists_are_reordered_by_dragging_their_handle",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(
                &ui,
                "Columns",
                "Reordered",
                &[("Alpha", &["A1"]), ("Beta", &[]), ("Gamma", &[])],
            )
            .await;
            let b = ui.browser().await;
            log_in(&b, &w.owner_email, &w.board_path(), "board").await;
            b.board_is(&board(&[("Alpha", &["A1"]), ("Beta", &[]), ("Gamma", &[])]))
                .await;

            b.drag_list("Alpha", DropAt::After("Beta")).await;
            let expected = board(&[("Beta", &[]), ("Alpha", &["A1"]), ("Gamma", &[])]);
            b.board_is(&expected).await;
            w.server_has(&ui, &expected).await;
            let lists = ui
                .server
                .call(
                    "GET",
                    &format!("/api/v1/orgs/{}/boards/{}/lists", w.org_id, w.board_id),
                    &w.owner_token,
                    None,
                    200,
                )
                .await;
            let names: Vec<&str> = lists["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["Beta", "Alpha", "Gamma"], "{lists}");

            b.reload().await;
            b.page("board").await;
            b.board_is(&expected).await;
        },
    )
    .await;
}

/// On a 375 px wide phone the lists scroll sideways inside their row, the
/// page itself does not, and `Add card` works in the first list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn the_board_is_usable_375_px_wide() {
    run(
        "the_board_is_usable_375_px_wide",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let w = world(
                &ui,
                "Pocket",
                "Small screen",
                &[("One", &[]), ("Two", &[]), ("Three", &[]), ("Four", &[])],
            )
            .await;
            let b = ui.phone(375, 800).await;
            log_in(&b, &w.owner_email, &w.board_path(), "board").await;
            b.board_is(&board(&[("One", &[]), ("Two", &[]), ("Three", &[]), ("Four", &[])]))
                .await;
            let widths = b
                .js(
                    "const l = document.querySelector('.lists');
                     return {screen: screen.width, lists: l.scrollWidth, listsClient: l.clientWidth,
                             page: document.documentElement.scrollWidth,
                             outside: [...document.querySelectorAll('body *')]
                               .filter(e => e.getBoundingClientRect().right > 375
                                            && !(l.contains(e) && getComputedStyle(e).position === 'static'))
                               .map(e => `${e.tagName.toLowerCase()}${e.className ? '.' + e.className : ''} \
                                          \"${e.textContent.trim().slice(0, 30)}\" ends at ${Math.round(e.getBoundingClientRect().right)}`)};",
                    vec![],
                )
                .await;
            assert_eq!(widths["screen"], json!(375), "the emulated phone: {widths}");
            assert!(
                widths["lists"].as_i64() > widths["listsClient"].as_i64(),
                "the lists do not scroll sideways: {widths}"
            );
            assert!(
                widths["page"].as_i64().unwrap() <= 375,
                "the page scrolls sideways ({} px wide); sticking out: {:#}",
                widths["page"],
                widths["outside"]
            );

            b.add_card("One", "From the phone").await;
            w.server_has(
                &ui,
                &board(&[
                    ("One", &["From the phone"]),
                    ("Two", &[]),
                    ("Three", &[]),
                    ("Four", &[]),
                ]),
            )
            .await;
        },
    )
    .await;
}

/// A list longer than the board view's first page (200 cards): the page
/// shows 200 and "200+", scrolling to the list's end loads the rest through
/// the list's cursor (each card once), and a search finds a card that was
/// not loaded yet (a filter loads every page first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn a_long_list_pages_in_as_it_scrolls() {
    run(
        "a_long_list_pages_in_as_it_scrolls",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let titles: Vec<String> = (0..230).map(|i| format!("Card {i:03}")).collect();
            let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
            let w = world(&ui, "Long", "Long board", &[("Long", &refs)]).await;
            let board_path = format!("/o/{}/b/{}", w.org_slug, w.board_id);
            let b = ui.browser().await;
            log_in(&b, &w.owner_email, &board_path, "board").await;
            let count = || async {
                b.js(
                    "return [document.querySelectorAll('.card').length, \
                     document.querySelector('section.list .count').textContent]",
                    vec![],
                )
                .await
            };
            assert_eq!(count().await, json!([200, "200+"]));
            // Scroll the list to its end: the next page comes in.
            poll("the rest of the list", || async {
                b.js(
                    "const ul = document.querySelector('section.list ul.cards'); \
                     ul.scrollTop = ul.scrollHeight; return true;",
                    vec![],
                )
                .await;
                let c = count().await;
                if c == json!([230, "230"]) {
                    Ok(())
                } else {
                    Err(format!("{c}"))
                }
            })
            .await;
            let shown: Vec<String> = serde_json::from_value(
                b.js(
                    "return [...document.querySelectorAll('.card-title')].map(e => e.textContent)",
                    vec![],
                )
                .await,
            )
            .unwrap();
            assert_eq!(shown, titles, "every card once, in order");
            // A fresh page: searching finds a card beyond the first 200.
            b.goto(&format!("{board_path}?q=Card%20229")).await;
            b.page("board").await;
            b.board_is(&board(&[("Long", &["Card 229"])])).await;
        },
    )
    .await;
}

/// The account page changes the password: a wrong current password is
/// said and changes nothing; the right one changes it, the page says so,
/// another session of the same person is signed out (its refresh token
/// refused), and the new password logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn the_account_page_changes_the_password_and_signs_out_other_sessions() {
    run(
        "the_account_page_changes_the_password_and_signs_out_other_sessions",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let who = email("pat");
            ui.server.signup("Pat Password", &who).await;
            // Another session of Pat's (a second device).
            let (status, other) = ui
                .server
                .api(
                    "POST",
                    "/api/v1/auth/login",
                    None,
                    Some(json!({"email": who, "password": PASSWORD})),
                )
                .await;
            assert_eq!(status, 200, "{other}");
            let other_refresh = other["refresh_token"].as_str().unwrap().to_owned();
            let b = ui.browser().await;
            log_in(&b, &who, "/me", "me").await;
            let form = b.find("form[aria-label='Change password']").await;
            b.fill_in(Some(&form), "Current password", "not my password")
                .await;
            b.fill_in(Some(&form), "New password", "a much longer passphrase")
                .await;
            b.click_button_in(Some(&form), "Change password").await;
            b.alert_with(Some(&form), &["current password is not correct"])
                .await;
            b.fill_in(Some(&form), "Current password", PASSWORD).await;
            b.click_button_in(Some(&form), "Change password").await;
            wait_status(&b, "Password changed").await;
            let (status, _) = ui
                .server
                .api(
                    "POST",
                    "/api/v1/auth/refresh",
                    None,
                    Some(json!({"refresh_token": other_refresh})),
                )
                .await;
            assert_eq!(status, 401, "the other session is signed out");
            assert_eq!(
                login_status(&ui, &who, "a much longer passphrase").await,
                200,
                "the new password logs in"
            );
        },
    )
    .await;
}

/// Waits until a `[role=status]` element of the page says `needle`.
async fn wait_status(b: &harness::Browser, needle: &str) {
    let what = format!("the page to say {needle:?}");
    poll(&what, || async {
        let said = statuses(b).await;
        if said.contains(needle) {
            Ok(())
        } else {
            Err(said)
        }
    })
    .await;
}

/// The status of a login through the API.
async fn login_status(ui: &Ui, email: &str, password: &str) -> u16 {
    let (status, _) = ui
        .server
        .api(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
    status
}

/// The text of every `[role=status]` element on the page.
async fn statuses(b: &harness::Browser) -> String {
    let said = b
        .js(
            "return [...document.querySelectorAll('[role=status]')].map(e => e.textContent).join(' | ');",
            vec![],
        )
        .await;
    said.as_str().unwrap_or_default().to_owned()
}

/// A forgotten password: "Forgot your password?" on the login page asks
/// for the link by email; the emailed link's page sets a new password
/// (the token leaves the address bar), which then logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn a_forgotten_password_is_reset_from_the_emailed_link() {
    run(
        "a_forgotten_password_is_reset_from_the_emailed_link",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let who = email("rae");
            ui.server.signup("Rae Reset", &who).await;
            let b = ui.browser().await;
            b.goto("/login").await;
            b.page("login").await;
            b.click_link("Forgot your password?").await;
            b.page("reset").await;
            let form = b.find("form[aria-label='Reset your password']").await;
            b.fill_in(Some(&form), "Email", &who).await;
            b.click_button_in(Some(&form), "Send reset link").await;
            wait_status(&b, "a link is on its way").await;
            let link = poll("the reset mail in the outbox", || async {
                let mails = ui.server.mails();
                let flat = mails
                    .join("\n")
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=");
                match flat.find("/reset-password?token=") {
                    Some(at) => Ok(flat[at..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect::<String>()),
                    None => Err(format!("{} mails", mails.len())),
                }
            })
            .await;
            b.goto(&link).await;
            b.page("reset").await;
            b.at("/reset-password").await;
            let form = b.find("form[aria-label='Choose a new password']").await;
            b.fill_in(Some(&form), "New password", "a freshly chosen passphrase")
                .await;
            b.click_button_in(Some(&form), "Set password").await;
            wait_status(&b, "Your password is set").await;
            assert_eq!(
                login_status(&ui, &who, "a freshly chosen passphrase").await,
                200,
                "the new password logs in"
            );
        },
    )
    .await;
}

/// The account page deletes the account: a wrong password is said and
/// changes nothing; the right one deletes it and goes to the login page,
/// and the account no longer logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_chromium,
    ignore = "needs Chromium: install chromium-driver or set ORGBOARD_CHROMEDRIVER"
)]
async fn the_account_page_deletes_the_account() {
    run(
        "the_account_page_deletes_the_account",
        Backend::Sqlite,
        |ui: Arc<Ui>| async move {
            let who = email("dee");
            ui.server.signup("Dee Delete", &who).await;
            let b = ui.browser().await;
            log_in(&b, &who, "/me", "me").await;
            let form = b.find("form[aria-label='Delete account']").await;
            b.fill_in(Some(&form), "Password", "not my password").await;
            b.click_button_in(Some(&form), "Delete my account").await;
            b.alert_with(Some(&form), &["password is not correct"])
                .await;
            b.fill_in(Some(&form), "Password", PASSWORD).await;
            b.click_button_in(Some(&form), "Delete my account").await;
            b.page("login").await;
            assert_eq!(
                login_status(&ui, &who, PASSWORD).await,
                401,
                "the deleted account no longer logs in"
            );
        },
    )
    .await;
}
