// kafkajs against a real broker: admin round trips (createTopics, fetchTopicMetadata,
// describeConfigs, fetchOffsets, deleteTopics), an idempotent acks=-1 producer, and a consumer
// group that commits: its second run resumes after the first run's committed offsets.
// Exits 1 on the first mismatch, saying what differed. Run by tests/python/test_kafkajs.py.
'use strict'
const { Kafka, logLevel, ConfigResourceTypes, Partitioners } = require('kafkajs')

const args = Object.fromEntries(
  process.argv.slice(2).map(a => a.replace(/^--/, '').split('='))
)
const bootstrap = args.bootstrap || '127.0.0.1:9092'
const topic = args.topic || 'kafkajs-topic'
const perRun = Number(args.records || 150)
const groupId = `${topic}-group`
const PARTITIONS = 3

function fail(msg) {
  console.error(`MISMATCH: ${msg}`)
  process.exit(1)
}
function expectEqual(what, got, want) {
  const g = JSON.stringify(got)
  const w = JSON.stringify(want)
  if (g !== w) fail(`${what}: got ${g}, want ${w}`)
}

// Every wait is bounded: the whole program too.
const overall = setTimeout(() => fail('did not finish in 120 s'), 120000)

const kafka = new Kafka({
  clientId: 'kafkajs-test',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  retry: { retries: 5 },
})

// Records of one run: partition i % 3, values numbered from `first`.
function records(first) {
  const out = []
  for (let i = first; i < first + perRun; i++) {
    out.push({ partition: i % PARTITIONS, key: `key-${i}`, value: `value-${i}` })
  }
  return out
}

async function produce(producer, msgs, endsBefore) {
  // Three sends, so the log has several batches per partition.
  const third = Math.ceil(msgs.length / 3)
  const ends = { ...endsBefore }
  for (let s = 0; s < msgs.length; s += third) {
    const chunk = msgs.slice(s, s + third)
    const meta = await producer.send({ topic, acks: -1, messages: chunk })
    for (const m of meta) {
      if (m.errorCode !== 0) fail(`produce to partition ${m.partition}: error ${m.errorCode}`)
      const n = chunk.filter(c => c.partition === m.partition).length
      expectEqual(`base offset of partition ${m.partition}`, Number(m.baseOffset), ends[m.partition])
      ends[m.partition] += n
    }
  }
  return ends
}

// One run of the group: reads until `want` records arrived, then disconnects (committing).
async function consumeRun(want, label) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 })
  const got = { 0: [], 1: [], 2: [] }
  let count = 0
  let done
  const finished = new Promise(resolve => { done = resolve })
  await consumer.connect()
  // fromBeginning: without committed offsets a run would start at offset 0 again.
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      got[partition].push({ offset: Number(message.offset), value: message.value.toString() })
      count++
      if (count >= want.total) done()
    },
  })
  const timer = setTimeout(() => fail(`${label}: read ${count} of ${want.total} records in 60 s`), 60000)
  await finished
  clearTimeout(timer)
  await consumer.disconnect()
  for (let p = 0; p < PARTITIONS; p++) {
    expectEqual(`${label}, partition ${p}`, got[p], want[p])
  }
  return got
}

function expected(msgs, ends) {
  const want = { 0: [], 1: [], 2: [], total: msgs.length }
  const next = { ...ends }
  for (const m of msgs) want[m.partition].push({ offset: next[m.partition]++, value: m.value })
  return want
}

async function committed(label, ends) {
  const offs = await admin.fetchOffsets({ groupId, topics: [topic] })
  const got = offs[0].partitions
    .map(p => [p.partition, Number(p.offset)])
    .sort((a, b) => a[0] - b[0])
  expectEqual(`${label}: committed offsets`, got, [0, 1, 2].map(p => [p, ends[p]]))
}

const admin = kafka.admin()

async function main() {
  await admin.connect()
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
  })
  if (created !== true) fail(`createTopics answered ${created}, want true`)

  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  expectEqual('fetchTopicMetadata topics', md.topics.map(t => t.name), [topic])
  expectEqual(
    'fetchTopicMetadata partitions',
    md.topics[0].partitions.map(p => [p.partitionId, p.partitionErrorCode, p.leader]).sort(),
    [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
  )

  const cfg = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms', 'cleanup.policy'] }],
    includeSynonyms: false,
  })
  const entries = Object.fromEntries(cfg.resources[0].configEntries.map(e => [e.configName, e.configValue]))
  expectEqual('describeConfigs', entries, { 'cleanup.policy': 'delete', 'retention.ms': '3600000' })
  expectEqual('describeConfigs error', cfg.resources[0].errorCode, 0)

  // Every record names its partition; the partitioner is chosen only to silence kafkajs's
  // warning about its v2 default. The idempotent producer keeps kafkajs's unbounded retries
  // (it warns about fewer); the program's overall timer bounds them.
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5000 },
  })
  await producer.connect()
  const start = { 0: 0, 1: 0, 2: 0 }

  // Run 1: the group reads the first records and commits them.
  const first = records(0)
  const afterFirst = await produce(producer, first, start)
  await consumeRun(expected(first, start), 'first run')
  await committed('after the first run', afterFirst)

  // Run 2: a new consumer of the same group resumes after the committed offsets.
  const second = records(perRun)
  const afterSecond = await produce(producer, second, afterFirst)
  await consumeRun(expected(second, afterFirst), 'second run')
  await committed('after the second run', afterSecond)
  await producer.disconnect()

  const ends = await admin.fetchTopicOffsets(topic)
  expectEqual(
    'fetchTopicOffsets (high watermarks)',
    ends.map(p => [p.partition, Number(p.high), Number(p.low)]).sort(),
    [0, 1, 2].map(p => [p, afterSecond[p], 0])
  )

  await admin.deleteTopics({ topics: [topic] })
  const topics = await admin.listTopics()
  if (topics.includes(topic)) fail(`${topic} still listed after deleteTopics: ${topics}`)
  await admin.disconnect()
  clearTimeout(overall)
  console.log(`kafkajs: ${2 * perRun} records in two group runs, each read once in order; admin round trips passed`)
}

main().catch(e => fail(`${e.name}: ${e.message}${e.cause ? ` (cause: ${e.cause})` : ''}`))
