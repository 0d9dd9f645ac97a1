//! The nfnetlink socket: sends one batch in a single `send` and collects the kernel's
//! acknowledgements (netlink processes a send synchronously, so every reply is queued when
//! `send` returns), and counts the rules of wgmesh's chain. Blocking; called on tokio's
//! blocking pool.
#![forbid(unsafe_code)]

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nftables::NfTablesMessage;
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};
use netlink_sys::{Socket, SocketAddr, constants::NETLINK_NETFILTER};

use crate::platform::linux::nft::{NftError, batch};

const ENOENT: i32 = 2;

/// Replies are queued before `send` returns; the timeout only guards against a reply that
/// never comes (it would otherwise block a blocking-pool thread forever).
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn open() -> Result<Socket, NftError> {
    let mut s = Socket::new(NETLINK_NETFILTER).map_err(NftError::Socket)?;
    s.bind_auto().map_err(NftError::Socket)?;
    s.connect(&SocketAddr::new(0, 0))
        .map_err(NftError::Socket)?;
    socket2::SockRef::from(&s)
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(NftError::Socket)?;
    Ok(s)
}

fn hint(errno: i32) -> &'static str {
    match errno {
        1 => "operation not permitted: run as root or with CAP_NET_ADMIN",
        2 => "no such table/chain",
        22 => "invalid argument: the kernel may lack nf_tables inet support",
        95 => "not supported: load the nf_tables module",
        _ => "see errno(3)",
    }
}

/// Reads replies until `done` says stop; returns the parsed messages.
fn read_replies(
    s: &Socket,
    what: &'static str,
    mut on_msg: impl FnMut(&NetlinkMessage<NetfilterMessage>) -> Result<bool, NftError>,
) -> Result<(), NftError> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = {
            let mut slice = &mut buf[..];
            s.recv(&mut slice, 0)
                .map_err(|source| NftError::Io { what, source })?
        };
        let mut off = 0;
        while off < n {
            let len = NetlinkBuffer::new_checked(&buf[off..n])
                .map_err(|e| NftError::Decode(e.to_string()))?
                .length() as usize;
            if len == 0 {
                break;
            }
            let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[off..off + len])
                .map_err(|e| NftError::Decode(e.to_string()))?;
            if !on_msg(&msg)? {
                return Ok(());
            }
            off += (len + 3) & !3;
        }
    }
}

/// Builds a batch with `build(iface, first_seq)`, sends it, and checks every ack.
pub fn send_batch(
    what: &'static str,
    iface: &str,
    build: fn(&str, u32) -> Vec<NetlinkMessage<NetfilterMessage>>,
) -> Result<(), NftError> {
    let s = open()?;
    let msgs = build(iface, 1);
    let wanted: Vec<u32> = msgs
        .iter()
        .filter(|m| m.header.flags & netlink_packet_core::NLM_F_ACK != 0)
        .map(|m| m.header.sequence_number)
        .collect();
    let buf = batch::serialize(&msgs);
    s.send(&buf, 0)
        .map_err(|source| NftError::Io { what, source })?;
    let table = batch::table_name(iface);
    let mut acked = 0usize;
    read_replies(&s, what, |msg| match &msg.payload {
        NetlinkPayload::Error(e) => {
            if let Some(code) = e.code {
                return Err(NftError::Kernel {
                    what,
                    table: table.clone(),
                    errno: -code.get(),
                    hint: hint(-code.get()),
                });
            }
            if wanted.contains(&msg.header.sequence_number) {
                acked += 1;
            }
            Ok(acked < wanted.len())
        }
        _ => Ok(true),
    })
}

/// Counts the rules in wgmesh's chain; `None` when the table or chain does not exist.
pub fn count_rules(iface: &str) -> Result<Option<usize>, NftError> {
    let s = open()?;
    let req = batch::get_rules(iface, 1);
    let buf = batch::serialize(std::slice::from_ref(&req));
    let what = "list rules";
    s.send(&buf, 0)
        .map_err(|source| NftError::Io { what, source })?;
    let mut rules = 0usize;
    let mut missing = false;
    let table = batch::table_name(iface);
    read_replies(&s, what, |msg| match &msg.payload {
        NetlinkPayload::Done(_) => Ok(false),
        NetlinkPayload::Error(e) => match e.code {
            Some(c) if -c.get() == ENOENT => {
                missing = true;
                Ok(false)
            }
            Some(c) => Err(NftError::Kernel {
                what,
                table: table.clone(),
                errno: -c.get(),
                hint: hint(-c.get()),
            }),
            None => Ok(false),
        },
        NetlinkPayload::InnerMessage(NetfilterMessage {
            inner: NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(_)),
            ..
        }) => {
            rules += 1;
            Ok(true)
        }
        _ => Ok(true),
    })?;
    Ok(if missing { None } else { Some(rules) })
}
