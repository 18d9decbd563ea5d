//! Files only the current user may open: the control channel's token file (`pypm.sock`) is
//! created with a protected DACL that has one entry, full access for the user's SID, so no
//! inherited entry (the Administrators group, a shared profile's users) lets another account read
//! the token. The DACL is given at creation (`CreateFileW` with `SECURITY_ATTRIBUTES`), so the
//! token is never in a file anyone else may read, and a rename keeps it.

use std::fs::File;
use std::io::{self, Write};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;

use windows_sys::Win32::Foundation::{
    ERROR_SUCCESS, GENERIC_READ, GENERIC_WRITE, INVALID_HANDLE_VALUE, LocalFree,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW, SDDL_REVISION_1,
    SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    DACL_SECURITY_INFORMATION, GetTokenInformation, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES,
    TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::{CREATE_ALWAYS, CreateFileW, FILE_ATTRIBUTE_NORMAL};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    s.encode_wide().chain([0]).collect()
}

/// A NUL-terminated UTF-16 string the system allocated, read and freed.
///
/// # Safety
/// `p` is null or a `LocalAlloc`ed NUL-terminated UTF-16 string nothing else frees.
unsafe fn take_local_wide(p: *mut u16) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: NUL-terminated (the caller's contract).
    let len = (0..).take_while(|&i| unsafe { *p.add(i) } != 0).count();
    // SAFETY: `len` units were just read.
    let s = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) });
    // SAFETY: allocated by the system with LocalAlloc, freed once here.
    unsafe { LocalFree(p.cast()) };
    s
}

/// The current user's SID, as a string (`S-1-5-21-…`).
pub fn current_user_sid() -> io::Result<String> {
    let mut token = std::ptr::null_mut();
    // SAFETY: the pseudo-handle of this process; `token` receives a new handle, owned below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh handle nothing else owns.
    let token = unsafe { OwnedHandle::from_raw_handle(token) };
    let mut len = 0u32;
    // SAFETY: asks for the size only (a null buffer of length 0).
    unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            std::ptr::null_mut(),
            0,
            &mut len,
        )
    };
    if len == 0 {
        return Err(io::Error::last_os_error());
    }
    // u64s: a TOKEN_USER needs pointer alignment.
    let mut buf = vec![0u64; (len as usize).div_ceil(8)];
    // SAFETY: `buf` holds at least `len` bytes.
    if unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            buf.as_mut_ptr().cast(),
            len,
            &mut len,
        )
    } == 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call wrote a TOKEN_USER at the start of `buf` (aligned for it).
    let user = unsafe { &*(buf.as_ptr() as *const TOKEN_USER) };
    let mut text = std::ptr::null_mut();
    // SAFETY: the SID lives in `buf`; `text` receives a LocalAlloc'ed string.
    if unsafe { ConvertSidToStringSidW(user.User.Sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a string the call allocated.
    Ok(unsafe { take_local_wide(text) })
}

/// The SDDL of a DACL that lets only the current user in: protected (nothing inherited), one
/// entry, full file access (`FA`) for the user's SID.
pub fn owner_only_sddl() -> io::Result<String> {
    Ok(format!("D:P(A;;FA;;;{})", current_user_sid()?))
}

/// Writes `bytes` to `path` (replaced atomically through `path.tmp`), the file readable and
/// writable by the current user only (see the module doc).
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let sddl: Vec<u16> = owner_only_sddl()?.encode_utf16().chain([0]).collect();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a NUL-terminated string; `sd` receives a LocalAlloc'ed descriptor, freed below.
    if unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        )
    } == 0
    {
        return Err(io::Error::last_os_error());
    }
    let attrs = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: sd,
        bInheritHandle: 0,
    };
    let tmp = path.with_extension("tmp");
    // A stale temp file would keep its own DACL (CREATE_ALWAYS does not replace it).
    let _ = std::fs::remove_file(&tmp);
    let name = wide(tmp.as_os_str());
    // SAFETY: a NUL-terminated name and attributes valid for the call; the handle is checked.
    let raw = unsafe {
        CreateFileW(
            name.as_ptr(),
            GENERIC_READ | GENERIC_WRITE,
            0,
            &attrs,
            CREATE_ALWAYS,
            FILE_ATTRIBUTE_NORMAL,
            std::ptr::null_mut(),
        )
    };
    let created = if raw == INVALID_HANDLE_VALUE {
        Err(io::Error::last_os_error())
    } else {
        Ok(raw)
    };
    // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW, freed once.
    unsafe { LocalFree(sd) };
    // SAFETY: a fresh handle nothing else owns.
    let mut f = File::from(unsafe { OwnedHandle::from_raw_handle(created?) });
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The DACL of `path` as SDDL (`D:P(A;;FA;;;S-1-5-…)`), for checks and tests.
pub fn file_dacl_sddl(path: &Path) -> io::Result<String> {
    let name = wide(path.as_os_str());
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a NUL-terminated name; only the descriptor is asked for (LocalAlloc'ed).
    let rc = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    let mut text = std::ptr::null_mut();
    // SAFETY: a valid descriptor; `text` receives a LocalAlloc'ed string.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        )
    };
    let err = io::Error::last_os_error();
    // SAFETY: allocated by GetNamedSecurityInfoW, freed once.
    unsafe { LocalFree(sd) };
    if ok == 0 {
        return Err(err);
    }
    // SAFETY: a string the call allocated.
    Ok(unsafe { take_local_wide(text) })
}
