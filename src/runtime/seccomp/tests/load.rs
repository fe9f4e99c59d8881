//! Loading: timing, errors, the compiled-filter cache and SCMP_ACT_NOTIFY.

use super::*;

/// Loads `filter` in a forked child and returns how long the load took.
fn time_load(filter: &Filter) -> Option<Duration> {
    let (r, w) = pipe();
    // SAFETY: as in run_filtered; the child writes its measurement to the pipe.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            // SAFETY: prctl with integer arguments; _exit ends the child.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let t = Instant::now();
            let nanos = if filter.load().is_ok() {
                t.elapsed().as_nanos() as u64
            } else {
                u64::MAX
            };
            let bytes = nanos.to_ne_bytes();
            sys(
                libc::SYS_write,
                w.as_raw_fd() as u64,
                bytes.as_ptr() as u64,
                8,
            );
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            waitpid(child, None).unwrap();
        }
    }
    drop(w);
    let mut bytes = [0u8; 8];
    let n = nix::unistd::read(&r, &mut bytes).unwrap();
    let nanos = u64::from_ne_bytes(bytes);
    (n == 8 && nanos != u64::MAX).then(|| Duration::from_nanos(nanos))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Not a timed assertion: prints what compiling, a cache hit and loading cost.
#[test]
fn default_profile_compile_and_load_time() {
    let dir = tempfile::tempdir().unwrap();
    let caps = default_caps();
    let cold = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                compile(&default_profile(&caps)).unwrap();
                t.elapsed()
            })
            .collect(),
    );
    compile_cached(&default_profile(&caps), dir.path()).unwrap();
    let warm = median(
        (0..21)
            .map(|_| {
                let t = Instant::now();
                compile_cached(&default_profile(&caps), dir.path()).unwrap();
                t.elapsed()
            })
            .collect(),
    );
    let filter = compile_cached(&default_profile(&caps), dir.path()).unwrap();
    let load = median(
        (0..11)
            .map(|_| time_load(&filter).expect("load failed"))
            .collect(),
    );
    eprintln!(
        "seccomp default profile: {} instructions; compile {cold:?}, cached {warm:?}, load {load:?}",
        filter.len()
    );
}

#[test]
fn an_empty_program_fails_to_load_with_an_error() {
    let filter = Filter {
        program: vec![],
        flags: 0,
        listener: false,
    };
    assert_eq!(time_load(&filter), None);
    assert_eq!(run_filtered(&filter, || 0), 91);
}

#[test]
fn compiled_filters_are_cached_by_profile() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("seccomp");
    let p = default_profile(&default_caps());
    let first = compile_cached(&p, &cache).unwrap();
    assert_eq!(first, compile(&p).unwrap());
    let files: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(compile_cached(&p, &cache).unwrap(), first);
    // Another profile, another entry.
    let other = compile_cached(&default_profile(&admin_caps()), &cache).unwrap();
    assert_ne!(other, first);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    // A damaged entry is recompiled and replaced.
    std::fs::write(&files[0], b"KSF1 truncated").unwrap();
    assert_eq!(compile_cached(&p, &cache).unwrap(), first);
    assert_eq!(
        Filter::from_bytes(&std::fs::read(&files[0]).unwrap()).unwrap(),
        first
    );
}

#[test]
fn filter_bytes_round_trip_and_junk_is_refused() {
    let mut p = profile(
        Act::ScmpActAllow,
        vec![rule(&["getcwd"], Act::ScmpActNotify, None, vec![])],
    );
    p.set_listener_path(Some("/run/agent.sock".into()))
        .set_flags(Some(vec![Flag::SeccompFilterFlagLog]));
    let f = compile(&p).unwrap();
    assert!(f.needs_listener());
    assert_eq!(Filter::from_bytes(&f.to_bytes()).unwrap(), f);
    let bytes = f.to_bytes();
    assert!(Filter::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(Filter::from_bytes(b"ELF\0").is_err());
    assert!(
        Filter::from_bytes(&[b'K', b'S', b'F', b'1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err()
    );
}

/// SCMP_ACT_NOTIFY end to end: the child sends its listener fd to an
/// "agent" (this test) at listenerPath, which answers getcwd with EXDEV.
#[test]
fn notify_hands_the_listener_to_the_agent_at_listener_path() {
    use std::io::{IoSliceMut, Read};
    use std::os::fd::{AsFd, FromRawFd, RawFd};
    use std::os::unix::net::UnixListener;

    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let agent = UnixListener::bind(&sock).unwrap();
    let mut p = profile(
        Act::ScmpActAllow,
        vec![rule(&["getcwd"], Act::ScmpActNotify, None, vec![])],
    );
    p.set_listener_path(Some(sock.clone()))
        .set_flags(Some(vec![Flag::SeccompFilterFlagTsync]));
    let filter = compile(&p).unwrap();
    assert!(
        filter.load().is_err(),
        "load() must refuse a profile that needs a listener"
    );

    // SAFETY: the child makes raw calls and sends one message before _exit.
    let child = match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = (|| {
                check!(
                    1,
                    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0
                );
                let Ok(Some(fd)) = filter.load_with_listener() else {
                    return 2;
                };
                let state = oci_spec::runtime::State::default();
                check!(
                    3,
                    send_listener(
                        &sock,
                        fd.as_fd(),
                        std::process::id() as i32,
                        &state,
                        Some("meta")
                    )
                    .is_ok()
                );
                drop(fd);
                let mut buf = [0u8; 64];
                check!(
                    4,
                    sys(libc::SYS_getcwd, buf.as_mut_ptr() as u64, 64, 0) == libc::EXDEV
                );
                0
            })();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };

    let (mut conn, _) = agent.accept().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let (n, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg.cmsgs().unwrap().find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        });
        (msg.bytes, fd.expect("no fd in the message"))
    };
    // SAFETY: SCM_RIGHTS installed this fd in our table; we own it now.
    let listener = unsafe { OwnedFd::from_raw_fd(fd) };
    buf.truncate(n);
    conn.read_to_end(&mut buf).unwrap();
    let state: oci_spec::runtime::ContainerProcessState = serde_json::from_slice(&buf).unwrap();
    assert_eq!(
        state.fds(),
        &vec![oci_spec::runtime::SECCOMP_FD_NAME.to_string()]
    );
    assert_eq!(state.metadata().as_deref(), Some("meta"));
    assert_eq!(*state.pid(), child.as_raw());

    let req = ScmpNotifReq::receive(listener.as_raw_fd()).unwrap();
    assert_eq!(req.data.syscall, ScmpSyscall::from_name("getcwd").unwrap());
    ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty())
        .respond(listener.as_raw_fd())
        .unwrap();
    match waitpid(child, None).unwrap() {
        WaitStatus::Exited(_, code) => assert_eq!(code, 0, "child check {code} failed"),
        other => panic!("child: {other:?}"),
    }
}
