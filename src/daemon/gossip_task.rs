//! In-mesh gossip, the daemon half: a task that runs the sans-IO [`GossipPolicy`] with the
//! wall clock — at each round one hello (with this node's peer filter) to a random active
//! peer's mesh address over the tunnel; the control socket's engine does the rest (the reply,
//! the records either side lacks; senders are `gossip`, relayed records `gossip-transitive`).

use rand_core::OsRng;
use tokio::task::JoinHandle;

use crate::discovery::ControlSocket;
use crate::discovery::control_socket::unix_now;
use crate::mesh::gossip::{GossipConfig, GossipPolicy, pick_peer};

/// Starts gossip on `socket` (abort the handle to stop it).
pub fn spawn(socket: ControlSocket) -> JoinHandle<()> {
    tokio::spawn(run(socket))
}

async fn run(socket: ControlSocket) {
    let mut rng = OsRng;
    let mut policy = GossipPolicy::new(GossipConfig::default(), unix_now(), &mut rng);
    loop {
        let wait = policy.next_at().since(unix_now());
        tokio::time::sleep(wait).await;
        let now = unix_now();
        let (learned, behind) = socket.gossip_news();
        policy.round(now, learned, behind, &mut rng);
        let peer = pick_peer(socket.store(), now, &mut rng);
        if let Some(to) = peer {
            tracing::trace!(to = %to, catching_up = policy.catching_up(), "gossip round");
            socket.send_hello_once(to).await;
        }
    }
}
