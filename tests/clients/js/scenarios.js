// KafkaJS scenarios against a running Veltrix broker, run by
// tests/clients/test_kafkajs.py as `node scenarios.js SCENARIO BOOTSTRAP TOPIC`.
//
// Each scenario drives the client and prints what it observed as one line of
// JSON on stdout; the Python test asserts the exact values, so that all the
// expectations live in one place. Client logs go to stderr, which the test
// shows when it fails. Any exception exits non-zero.
'use strict';

const { Kafka, logLevel, CompressionTypes } = require('kafkajs');

// A watchdog: a client stuck in retries must not outlive the test's own timeout.
const WATCHDOG_MS = 60_000;

function client(bootstrap) {
  return new Kafka({
    clientId: 'veltrix-client-tests',
    brokers: bootstrap.split(","),
    connectionTimeout: 5_000,
    requestTimeout: 15_000,
    // Few, short retries: a failing request should fail the scenario quickly
    // and show its error, not be retried for minutes.
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log }) => {
      process.stderr.write(`kafkajs ${level} ${namespace}: ${JSON.stringify(log)}\n`);
    },
  });
}

// Admin and producer: create a topic, produce with known offsets and
// timestamps, then ask for offsets by position and by time.
async function adminAndProducer(bootstrap, topic) {
  const kafka = client(bootstrap);
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  const out = {};
  await admin.connect();
  await producer.connect();
  try {
    // The records carry fixed timestamps from 1970 so that lookups by time
    // have exact answers; retention.ms=-1 keeps the broker from deleting them.
    const spec = { topic, numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '-1' }] };
    out.created = await admin.createTopics({ topics: [spec], waitForLeaders: true });
    out.createdAgain = await admin.createTopics({ topics: [spec], waitForLeaders: true });
    out.listed = (await admin.listTopics()).includes(topic);
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    out.metadata = meta.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions
        .map((p) => ({ partition: p.partitionId, leader: p.leader, replicas: p.replicas }))
        .sort((a, b) => a.partition - b.partition),
    }));

    // Partition 0: five records, one send each, so each is its own batch with
    // its own timestamp: 1000, 2000, ... 5000.
    out.singles = [];
    for (let n = 0; n < 5; n++) {
      const [meta0] = await producer.send({
        topic,
        acks: -1,
        messages: [{ partition: 0, key: `single-${n}`, value: `value-${n}`, timestamp: String((n + 1) * 1000) }],
      });
      out.singles.push({ partition: meta0.partition, baseOffset: meta0.baseOffset, errorCode: meta0.errorCode });
    }

    // Partition 1: ten records in one send (one batch), gzip-compressed, with
    // headers, timestamps 100000..109000.
    const batch = await producer.send({
      topic,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: Array.from({ length: 10 }, (_, n) => ({
        partition: 1,
        key: `batch-${n}`,
        value: `batch-value-${n}-${'z'.repeat(100)}`,
        headers: { index: String(n), source: 'kafkajs' },
        timestamp: String(100_000 + n * 1000),
      })),
    });
    out.batch = batch.map((m) => ({ partition: m.partition, baseOffset: m.baseOffset, errorCode: m.errorCode }));

    out.offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition);
    const byTime = async (ts) =>
      (await admin.fetchTopicOffsetsByTimestamp(topic, ts)).sort((a, b) => a.partition - b.partition);
    out.byTime = {
      0: await byTime(0),
      2500: await byTime(2500),
      5000: await byTime(5000),
      50000: await byTime(50000),
      200000: await byTime(200000),
    };
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
  return out;
}

// A group consumer reading one partition from a given offset. Needs the
// consumer group APIs (FindCoordinator, JoinGroup, SyncGroup, ...), which
// KafkaJS requires for any consumption.
async function groupConsume(bootstrap, topic) {
  const kafka = client(bootstrap);
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  const consumer = kafka.consumer({ groupId: `veltrix-${topic}`, maxWaitTimeInMs: 500 });
  await admin.connect();
  await producer.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 20 }, (_, n) => ({ partition: 1, key: `k${n}`, value: `v${n}` })),
    });
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
  const got = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let done;
    const finished = new Promise((resolve) => {
      done = resolve;
    });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        if (partition !== 1) return;
        got.push({ offset: message.offset, key: message.key.toString(), value: message.value.toString() });
        if (got.length === 20 - 7) done();
      },
    });
    // KafkaJS applies a seek made after run() before its first fetch of the
    // partition, so reading starts at offset 7, not at the beginning.
    consumer.seek({ topic, partition: 1, offset: '7' });
    await finished;
  } finally {
    await consumer.disconnect();
  }
  return { consumed: got };
}

const SCENARIOS = { 'admin-producer': adminAndProducer, 'group-consume': groupConsume };

async function main() {
  const [name, bootstrap, topic] = process.argv.slice(2);
  const scenario = SCENARIOS[name];
  if (!scenario || !bootstrap || !topic) {
    throw new Error(`usage: node scenarios.js {${Object.keys(SCENARIOS).join('|')}} BOOTSTRAP TOPIC`);
  }
  const watchdog = setTimeout(() => {
    process.stderr.write(`scenario ${name} still running after ${WATCHDOG_MS} ms; giving up\n`);
    process.exit(3);
  }, WATCHDOG_MS);
  const result = await scenario(bootstrap, topic);
  clearTimeout(watchdog);
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
