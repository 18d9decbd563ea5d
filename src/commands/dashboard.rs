//! `pypm dashboard`: print the dashboard URL with its token (SPEC §2, §7).

use std::path::Path;

use super::Failure;
use super::client_cmds::{QUICK, client_failure, no_supervisor, target};
use crate::control::client::{self, ClientError};
use crate::control::protocol::{Request, Response};

/// The address comes from the running supervisor (what it is bound to), not from the file,
/// which may have been edited since or be invalid right now.
pub fn dashboard(config: Option<&Path>) -> Result<(), Failure> {
    let t = target(config)?;
    let http = match client::request_for(&t.state_dir, Some(&t.located.path), Request::Ping, QUICK)
    {
        Ok(Response::Pong { http, .. }) => http,
        Ok(Response::Error { message, code, .. }) => {
            return Err(Failure::from_response(message, code));
        }
        Ok(_) => None,
        Err(ClientError::NotRunning) => return Err(no_supervisor(&t.located.display)),
        Err(e) => return Err(client_failure(e)),
    };
    let Some(addr) = http else {
        return Err(Failure::Error(format!(
            "the dashboard is off for `{}`\n\nadd `http = \"127.0.0.1:9615\"` to its [pypm] table, then `pypm reload` (if it is there, the supervisor's log says why it could not listen)",
            t.located.display
        )));
    };
    let token = crate::http::token::read(&t.state_dir).ok_or_else(|| {
        Failure::Error(format!(
            "no token in `{}`",
            crate::http::token::path(&t.state_dir).display()
        ))
    })?;
    println!("http://{addr}/?token={token}");
    Ok(())
}
