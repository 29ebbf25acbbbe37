//! What the gateway process holds, read from /proc: resident memory, open file descriptors,
//! and its established TCP connections to the mock upstreams.

use std::collections::HashSet;

#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub rss_kib: u64,
    pub fds: u64,
    pub upstream_conns: u64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The inodes of the process's sockets, and how many descriptors it has.
fn fds(pid: u32) -> (u64, HashSet<u64>) {
    let mut n = 0;
    let mut sockets = HashSet::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            n += 1;
            if let Ok(target) = std::fs::read_link(e.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    sockets.extend(inode.parse::<u64>().ok());
                }
            }
        }
    }
    (n, sockets)
}

/// Established connections among `sockets` whose remote port is one of `ports`.
fn connections(pid: u32, sockets: &HashSet<u64>, ports: &[u16]) -> u64 {
    let mut n = 0;
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "01" {
                continue;
            }
            let port = f[2]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let inode = f[9].parse::<u64>().ok();
            if port.is_some_and(|p| ports.contains(&p))
                && inode.is_some_and(|i| sockets.contains(&i))
            {
                n += 1;
            }
        }
    }
    n
}

pub fn take(pid: u32, upstream_ports: &[u16]) -> Sample {
    let (fds, sockets) = fds(pid);
    Sample {
        rss_kib: rss_kib(pid),
        fds,
        upstream_conns: connections(pid, &sockets, upstream_ports),
    }
}
