//! Pure construction of wgmesh's nf_tables batch (netlink-packet-netfilter types): the table
//! `inet wgmesh-<iface>` with one base chain `relay` (type filter, hook forward, priority 0,
//! policy accept) holding two rules:
//!
//! ```text
//! iifname "<iface>" oifname "<iface>" counter accept   # peer -> peer through this relay
//! iifname "<iface>" counter drop                       # mesh -> anything else: never
//! ```
//!
//! Writing is one atomic batch `NFNL_MSG_BATCH_BEGIN, NEWTABLE, DELTABLE, NEWTABLE, NEWCHAIN,
//! NEWRULE, NEWRULE, NFNL_MSG_BATCH_END`: the first NEWTABLE (without NLM_F_EXCL) succeeds
//! whether or not the table exists, so delete + create is idempotent and atomic.
//! Byte layout (include/uapi/linux/netfilter/nfnetlink.h, nf_tables.h): every message is a
//! `nlmsghdr` (type = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*; batch markers use subsystem 0
//! and carry `res_id` = NFNL_SUBSYS_NFTABLES = 10) followed by `nfgenmsg { u8 family
//! (NFPROTO_INET = 1), u8 version 0, be16 res_id }` and the attributes.
#![forbid(unsafe_code)]

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage,
};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Cmp, DataAttribute, Expressions, Hook, Immediate, InetHookNumber,
    Meta, MetaKey, NfTablesMessage, Operator, Register, RuleAttribute, RuleMessage, TableAttribute,
    TableMessage, Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

/// NFNL_SUBSYS_NFTABLES (nfnetlink.h): the `res_id` of batch begin/end messages.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// Name of the base chain.
pub const CHAIN: &str = "relay";
/// NF_ACCEPT / NF_DROP verdict codes (include/uapi/linux/netfilter.h).
const NF_ACCEPT: u32 = 1;
const NF_DROP: u32 = 0;
/// IFNAMSIZ: `meta iifname` loads a 16-byte, NUL-padded name.
const IFNAMSIZ: usize = 16;

/// The table wgmesh owns for `iface`.
pub fn table_name(iface: &str) -> String {
    format!("wgmesh-{iface}")
}

fn inet(msg: NfTablesMessage) -> NetlinkMessage<NetfilterMessage> {
    NetlinkMessage::from(NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0),
        msg,
    ))
}

fn control(msg: ControlMessage) -> NetlinkMessage<NetfilterMessage> {
    NetlinkMessage::from(NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES),
        msg,
    ))
}

fn ifname_bytes(iface: &str) -> Vec<u8> {
    let mut v = iface.as_bytes().to_vec();
    v.resize(IFNAMSIZ, 0);
    v
}

fn match_if(key: MetaKey, iface: &str) -> [Expressions; 2] {
    [
        Expressions::Meta(vec![
            Meta::Key(key),
            Meta::DestinationRegister(Register::Reg1),
        ]),
        Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(ifname_bytes(iface))),
        ]),
    ]
}

fn counter() -> Expressions {
    Expressions::Other {
        expression_type: "counter".to_string(),
        attributes: vec![],
    }
}

fn verdict(code: u32) -> Expressions {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(Register::Verdict),
        Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
            Verdict::Other(code),
        )])),
    ])
}

fn rule(table: &str, exprs: Vec<Expressions>) -> NetlinkMessage<NetfilterMessage> {
    let mut m = inet(NfTablesMessage::NewRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(table.to_string()),
            RuleAttribute::Chain(CHAIN.to_string()),
            RuleAttribute::Expressions(exprs.into_iter().map(Into::into).collect()),
        ],
    }));
    m.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
    m
}

fn table_msg(table: &str, delete: bool) -> NetlinkMessage<NetfilterMessage> {
    let t = TableMessage {
        attributes: vec![TableAttribute::Name(table.to_string())],
    };
    let mut m = inet(if delete {
        NfTablesMessage::DeleteTable(t)
    } else {
        NfTablesMessage::NewTable(t)
    });
    m.header.flags = NLM_F_REQUEST | NLM_F_ACK | if delete { 0 } else { NLM_F_CREATE };
    m
}

/// Sequence numbers from `first`, lengths set.
fn finish(
    mut msgs: Vec<NetlinkMessage<NetfilterMessage>>,
    first: u32,
) -> Vec<NetlinkMessage<NetfilterMessage>> {
    for (i, m) in msgs.iter_mut().enumerate() {
        m.header.sequence_number = first.wrapping_add(i as u32);
        if m.header.flags == 0 {
            m.header.flags = NLM_F_REQUEST;
        }
        m.finalize();
    }
    msgs
}

/// The batch that (re)creates the relay table for `iface`.
pub fn relay_batch(iface: &str, first_seq: u32) -> Vec<NetlinkMessage<NetfilterMessage>> {
    let table = table_name(iface);
    let mut chain = inet(NfTablesMessage::NewChain(ChainMessage {
        attributes: vec![
            ChainAttribute::Table(table.clone()),
            ChainAttribute::Name(CHAIN.to_string()),
            ChainAttribute::Hook(vec![
                Hook::Number(InetHookNumber::Forward.into()),
                Hook::Priority(0),
            ]),
            ChainAttribute::Policy(NF_ACCEPT),
            ChainAttribute::Type("filter".to_string()),
        ],
    }));
    chain.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    let [iif, iif_cmp] = match_if(MetaKey::Iifname, iface);
    let [oif, oif_cmp] = match_if(MetaKey::Oifname, iface);
    let accept = rule(
        &table,
        vec![iif, iif_cmp, oif, oif_cmp, counter(), verdict(NF_ACCEPT)],
    );
    let [iif, iif_cmp] = match_if(MetaKey::Iifname, iface);
    let drop = rule(&table, vec![iif, iif_cmp, counter(), verdict(NF_DROP)]);
    finish(
        vec![
            control(ControlMessage::BatchBegin),
            table_msg(&table, false),
            table_msg(&table, true),
            table_msg(&table, false),
            chain,
            accept,
            drop,
            control(ControlMessage::BatchEnd),
        ],
        first_seq,
    )
}

/// The batch that removes the relay table (idempotent: create-if-missing, then delete).
pub fn remove_batch(iface: &str, first_seq: u32) -> Vec<NetlinkMessage<NetfilterMessage>> {
    let table = table_name(iface);
    finish(
        vec![
            control(ControlMessage::BatchBegin),
            table_msg(&table, false),
            table_msg(&table, true),
            control(ControlMessage::BatchEnd),
        ],
        first_seq,
    )
}

/// A dump request for the rules of our chain (fails with ENOENT when the table is gone).
pub fn get_rules(iface: &str, seq: u32) -> NetlinkMessage<NetfilterMessage> {
    let mut m = inet(NfTablesMessage::GetRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(table_name(iface)),
            RuleAttribute::Chain(CHAIN.to_string()),
        ],
    }));
    m.header.flags = NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK;
    m.header.sequence_number = seq;
    m.finalize();
    m
}

/// Serialises messages back to back into one buffer (one `send`, as nfnetlink requires for a
/// batch).
pub fn serialize(msgs: &[NetlinkMessage<NetfilterMessage>]) -> Vec<u8> {
    let len: usize = msgs.iter().map(|m| m.header.length as usize).sum();
    let mut buf = vec![0u8; len];
    let mut off = 0;
    for m in msgs {
        let l = m.header.length as usize;
        m.serialize(&mut buf[off..off + l]);
        off += l;
    }
    buf
}

/// The message type of a serialised nfnetlink message: subsystem << 8 | command.
pub fn message_type(m: &NetlinkMessage<NetfilterMessage>) -> u16 {
    m.header.message_type
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16le(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }

    #[test]
    fn batch_layout() {
        let msgs = relay_batch("wg0", 100);
        let types: Vec<u16> = msgs.iter().map(message_type).collect();
        // NFNL_MSG_BATCH_BEGIN=0x10, (10<<8)|NFT_MSG_{NEWTABLE=0,DELTABLE=2,NEWCHAIN=3,NEWRULE=6}, END=0x11
        assert_eq!(
            types,
            vec![0x10, 0x0a00, 0x0a02, 0x0a00, 0x0a03, 0x0a06, 0x0a06, 0x11]
        );
        let buf = serialize(&msgs);
        // first message: 16-byte nlmsghdr + 4-byte nfgenmsg, res_id big-endian 10
        assert_eq!(u16le(&buf, 4), 0x10);
        assert_eq!(&buf[16..20], &[0, 0, 0, 10]);
        // sequence numbers are consecutive
        assert_eq!(msgs[0].header.sequence_number, 100);
        assert_eq!(msgs[7].header.sequence_number, 107);
        // second message: NEWTABLE for family inet (NFPROTO_INET = 1) named "wgmesh-wg0"
        let second = 20;
        assert_eq!(u16le(&buf, second + 4), 0x0a00);
        assert_eq!(buf[second + 16], 1);
        let name = b"wgmesh-wg0\0";
        assert!(buf[second..].windows(name.len()).any(|w| w == name));
        // interface names are compared as 16 NUL-padded bytes
        let padded = ifname_bytes("wg0");
        assert_eq!(padded.len(), 16);
        assert!(buf.windows(16).any(|w| w == padded.as_slice()));
        assert!(buf.windows(8).any(|w| w == b"counter\0"));
    }

    #[test]
    fn remove_is_create_then_delete() {
        let types: Vec<u16> = remove_batch("wg0", 1).iter().map(message_type).collect();
        assert_eq!(types, vec![0x10, 0x0a00, 0x0a02, 0x11]);
    }

    #[test]
    fn table_names() {
        assert_eq!(table_name("wgmesh0"), "wgmesh-wgmesh0");
    }
}
