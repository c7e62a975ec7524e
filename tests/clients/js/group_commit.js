// Two KafkaJS consumers in one group read a whole topic and commit its ends,
// run by tests/clients/test_groups.py as
//
//   node group_commit.js BOOTSTRAP TOPIC GROUP '{"0": END0, "1": END1, ...}'
//
// Both consumers subscribe from the beginning and let KafkaJS commit after every
// batch (autoCommit, its default). Once every offset below each partition's end
// has been seen, the script waits until the admin client's OffsetFetch shows the
// ends committed, disconnects both consumers (leaving the group) and prints one
// line of JSON: distinct offsets seen per partition, offsets outside the
// expected range, duplicates, records per member, the committed offsets and the
// time taken. Client logs go to stderr. Any exception exits non-zero.
'use strict';

const { Kafka, logLevel } = require('kafkajs');

const WATCHDOG_MS = 90_000;

function client(bootstrap, clientId) {
  return new Kafka({
    clientId,
    brokers: bootstrap.split(","),
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log }) => {
      process.stderr.write(`kafkajs ${level} ${namespace}: ${JSON.stringify(log)}\n`);
    },
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const [bootstrap, topic, groupId, endsJson] = process.argv.slice(2);
  if (!bootstrap || !topic || !groupId || !endsJson) {
    throw new Error('usage: node group_commit.js BOOTSTRAP TOPIC GROUP ENDS_JSON');
  }
  const watchdog = setTimeout(() => {
    process.stderr.write(`group_commit.js still running after ${WATCHDOG_MS} ms; giving up\n`);
    process.exit(3);
  }, WATCHDOG_MS);
  const ends = JSON.parse(endsJson);
  const total = Object.values(ends).reduce((a, b) => a + b, 0);
  const started = Date.now();

  const seen = {};
  for (const p of Object.keys(ends)) seen[p] = new Set();
  let distinct = 0;
  let duplicates = 0;
  let outOfRange = 0;
  const perMember = [0, 0];
  let allSeen;
  const allSeenPromise = new Promise((resolve) => {
    allSeen = resolve;
  });

  const consumers = [0, 1].map((i) =>
    client(bootstrap, `kafkajs-group-${i}`).consumer({
      groupId,
      sessionTimeout: 6_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: 500,
    }),
  );
  const admin = client(bootstrap, 'kafkajs-group-admin').admin();
  await admin.connect();
  try {
    for (const [i, consumer] of consumers.entries()) {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          perMember[i] += 1;
          const offset = Number(message.offset);
          const set = seen[String(partition)];
          if (!set || offset < 0 || offset >= ends[String(partition)]) {
            outOfRange += 1;
          } else if (set.has(offset)) {
            duplicates += 1;
          } else {
            set.add(offset);
            distinct += 1;
            if (distinct === total) allSeen();
          }
        },
      });
    }
    await allSeenPromise;

    // KafkaJS commits after each batch; wait until the broker shows the ends.
    let committed = {};
    for (let attempt = 0; attempt < 300; attempt++) {
      const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
      committed = {};
      for (const p of t.partitions) committed[String(p.partition)] = p.offset;
      if (Object.keys(ends).every((p) => committed[p] === String(ends[p]))) break;
      await sleep(100);
    }
    const out = {
      distinct: Object.fromEntries(Object.entries(seen).map(([p, s]) => [p, s.size])),
      outOfRange,
      duplicates,
      perMember,
      committed,
      seconds: (Date.now() - started) / 1000,
    };
    for (const consumer of consumers) await consumer.disconnect();
    clearTimeout(watchdog);
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await admin.disconnect();
  }
}

main().catch((e) => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
