/**
 * Redis as deployed, on loopback, for the Redis store's tests: a Redis Cluster of three primaries
 * (slots assigned with `redis-cli --cluster create`), and a Sentinel set-up (a master, a replica
 * and three sentinels with quorum 2, failing over one second after the master stops answering).
 * Every process runs from a private directory on free ports and is stopped by its PID.
 *
 * @example
 * const cluster = await startCluster()
 * // ... RedisStore.make({ url: cluster.nodes[0]!.url, cluster: {} }) ...
 * await cluster.stop()
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { run } from "./exec.ts"
import { startRedis, type TestRedis } from "./redis.ts"
import { freePort } from "./runtimes.ts"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await sleep(100)
  }
  throw new Error(`${what} not within ${timeoutMs} ms`)
}

/** `redis-cli -p PORT ARGS`, its output. */
export const cli = async (port: number, ...args: ReadonlyArray<string>): Promise<string> => {
  const result = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeoutMs: 10_000 })
  if (result.code !== 0) throw new Error(`redis-cli -p ${port} ${args.join(" ")}: ${result.stderr}`)
  return result.stdout
}

export interface TestCluster {
  readonly nodes: ReadonlyArray<TestRedis>
  readonly stop: () => Promise<void>
}

/** Three primaries sharing the 16384 slots, no replicas; ready when every node says cluster_state:ok. */
export const startCluster = async (): Promise<TestCluster> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-redis-cluster-"))
  const nodes: Array<TestRedis> = []
  const stop = async () => {
    for (const node of nodes) await node.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < 3; i++) {
      nodes.push(await startRedis({
        args: ["--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${i}.conf`), "--dir", dir, "--cluster-node-timeout", "2000"]
      }))
    }
    const create = await run("redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"], {
      timeoutMs: 30_000
    })
    if (create.code !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}${create.stderr}`)
    for (const node of nodes) {
      await waitFor(`cluster_state:ok on ${node.port}`, async () => (await cli(node.port, "CLUSTER", "INFO")).includes("cluster_state:ok"))
    }
    return { nodes, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

export interface TestSentinelSet {
  readonly name: string
  /** The first master; `replica` is promoted when it dies. */
  readonly master: TestRedis
  readonly replica: TestRedis
  /** Sentinel ports. */
  readonly sentinels: ReadonlyArray<number>
  /** The master's port as the sentinels name it now. */
  readonly currentMaster: () => Promise<number>
  readonly stop: () => Promise<void>
}

const startSentinel = async (dir: string, index: number, name: string, masterPort: number): Promise<{ port: number; proc: ChildProcess }> => {
  const port = await freePort()
  const conf = path.join(dir, `sentinel-${index}.conf`)
  // Sentinel rewrites its config file (the replicas, the other sentinels, the epoch it saw).
  fs.writeFileSync(conf, [
    `port ${port}`,
    "bind 127.0.0.1",
    `dir ${dir}`,
    `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
    `sentinel down-after-milliseconds ${name} 1000`,
    `sentinel failover-timeout ${name} 10000`,
    `sentinel parallel-syncs ${name} 1`,
    ""
  ].join("\n"))
  const proc = spawn("redis-server", [conf, "--sentinel"], { stdio: ["ignore", "ignore", "ignore"] })
  const orphan = () => void proc.kill("SIGKILL")
  process.once("exit", orphan)
  proc.once("exit", () => void process.off("exit", orphan))
  await waitFor(`sentinel on ${port}`, async () => (await cli(port, "PING")).trim() === "PONG", 10_000)
  return { port, proc }
}

/** A master, one replica in sync with it, and three sentinels that know both and each other. */
export const startSentinelSet = async (name = "bridge-master"): Promise<TestSentinelSet> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-redis-sentinel-"))
  const started: Array<TestRedis> = []
  const sentinels: Array<{ port: number; proc: ChildProcess }> = []
  const stop = async () => {
    for (const s of sentinels) {
      if (s.proc.exitCode !== null) continue
      const exited = new Promise((resolve) => s.proc.once("exit", resolve))
      s.proc.kill("SIGKILL")
      await exited
    }
    for (const r of started) await r.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    const master = await startRedis({ args: ["--dir", dir, "--dbfilename", "master.rdb"] })
    started.push(master)
    const replica = await startRedis({ args: ["--dir", dir, "--dbfilename", "replica.rdb", "--replicaof", "127.0.0.1", String(master.port)] })
    started.push(replica)
    await waitFor("the replica to sync", async () => (await cli(replica.port, "INFO", "replication")).includes("master_link_status:up"))
    for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(dir, i, name, master.port))
    // Each sentinel must have found the replica and the two other sentinels before a failover can be agreed.
    for (const s of sentinels) {
      await waitFor(`sentinel ${s.port} to know the set`, async () => {
        const info = await cli(s.port, "SENTINEL", "MASTER", name)
        const lines = info.trim().split("\n")
        const field = (key: string) => lines[lines.indexOf(key) + 1]
        return field("num-slaves") === "1" && field("num-other-sentinels") === "2"
      })
    }
    const currentMaster = async () => Number((await cli(sentinels[0]!.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)).trim().split("\n")[1])
    return { name, master, replica, sentinels: sentinels.map((s) => s.port), currentMaster, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
