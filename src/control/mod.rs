//! The control plane: the protocol shared by client and daemon, the socket server the supervisor
//! runs, and the client the CLI uses.

pub mod client;
pub mod gate;
pub mod protocol;
pub mod server;

// Unix sockets, modes and peer uids.
#[cfg(all(test, unix))]
mod tests;
