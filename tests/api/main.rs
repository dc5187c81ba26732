//! The API tests: one test binary (one link instead of twenty) with shared
//! support in `common`. Every module runs its tests on SQLite and on
//! PostgreSQL (`backend_tests!`); `browser` drives a real Chromium,
//! `process` and `multinode` start real server processes. (`tests/ops` is
//! a binary of its own: it checks the process-wide metrics.)

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

mod account;
mod audit;
mod auth;
mod board_view;
mod boards;
mod browser;
mod events;
mod http;
mod invites;
mod isolation;
mod jobs;
mod members;
mod multinode;
mod ordering;
mod orgs;
mod process;
mod shapes;
mod storage;
mod tasks;
mod web;
