// A private Mainline DHT for the tests: N npm `bittorrent-dht` nodes (BEP 5 + BEP 44) in one
// process, bound to the given IPv4 addresses and one UDP port, never bootstrapping from the
// public routers (`bootstrap: false`); each adds the others, then it prints one JSON "ready"
// line. Runs until SIGTERM or its lifetime ends. Usage: node swarm.mjs IP1,IP2,.. PORT LIFETIME_S
// (run from the folder holding node_modules: ESM resolves packages relative to the script).
import DHT from 'bittorrent-dht'
import crypto from 'node:crypto'
const [ipList, portText, lifeText] = process.argv.slice(2)
const ips = ipList.split(','), port = +portText, lifetime = +lifeText
const t0 = Date.now()
const log = (o) => console.log(JSON.stringify({ ...o, ms: Date.now() - t0 }))
const pubFromRaw = (raw) => crypto.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' })
const verify = (sig, msg, pk) => { try { return crypto.verify(null, msg, pubFromRaw(pk), sig) } catch { return false } }
const nodes = []
for (const ip of ips) {
  const d = new DHT({ bootstrap: false, verify })
  d.on('error', (e) => { log({ error: `${ip}: ${e.message}` }); process.exit(1) })
  d.listen(port, ip)
  nodes.push(d)
}
await Promise.all(nodes.map((d) => d.listening ? null : new Promise((r) => d.once('listening', r))))
nodes.forEach((d, i) => ips.forEach((ip, j) => { if (i !== j) d.addNode({ host: ip, port }) }))
const tick = setInterval(() => {
  const sizes = nodes.map((d) => d.toJSON().nodes.length)
  if (sizes.every((s) => s >= ips.length - 1)) { clearInterval(tick); log({ ready: true, routing_table_sizes: sizes }) }
}, 100)
const stop = () => { nodes.forEach((d) => d.destroy()); process.exit(0) }
setTimeout(stop, lifetime * 1000).unref()
setInterval(() => {}, 1 << 30)
process.on('SIGTERM', stop)
