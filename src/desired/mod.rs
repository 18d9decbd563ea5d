//! The desired state: what the file asks for, resolved. `resolve` turns the parsed config into
//! each app's argv and complete environment, `python_env` finds each app's interpreter and
//! environment (SPEC §3), `graph` orders apps by their dependencies. Pure apart from reading
//! files and looking up programs; nothing here starts a process.
pub mod environ;
pub mod graph;
pub mod python_env;
pub mod resolve;
