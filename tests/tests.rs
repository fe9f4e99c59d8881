//! kiln integration tests: one binary, one module per area.
//!
//! Privileged groups need root: with `CI=true` a missing privilege or tool
//! fails the test; elsewhere the test prints why it skips and passes.

#[path = "it/common.rs"]
mod common;

#[path = "it/bad_input.rs"]
mod bad_input;
#[path = "it/bundle.rs"]
mod bundle;
#[path = "it/cli.rs"]
mod cli;
#[path = "it/escapes.rs"]
mod escapes;
#[path = "it/hostile.rs"]
mod hostile;
#[path = "it/interop.rs"]
mod interop;
#[path = "it/layer_cache.rs"]
mod layer_cache;
#[path = "it/limits.rs"]
mod limits;
#[path = "it/run_image.rs"]
mod run_image;
#[path = "it/runtime.rs"]
mod runtime;
#[path = "it/runtime_interop.rs"]
mod runtime_interop;
#[path = "it/store.rs"]
mod store;
