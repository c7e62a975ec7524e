// KafkaJS transactions against a running Veltrix broker:
//   node transactions.mjs BOOTSTRAP PREFIX
// Run by tests/clients/test_kafkajs_transactions.py, which asserts the exact
// values; this script only drives the client and prints what it observed as
// one line of JSON on stdout. Client logs go to stderr. Any exception, or the
// watchdog, exits non-zero.
//
// Topics (3 partitions each): PREFIX-tx, PREFIX-in, PREFIX-out.
//   1. commit and abort: a transaction of 30 records is committed, one of 30
//      more is aborted (every record acknowledged before the abort), then a
//      transaction of one "end" record per partition is committed. Readers
//      read each partition until its "end": whatever came before it in the
//      log has then been delivered or skipped, so no quiet period is needed.
//   2. consume-transform-produce: 30 records in PREFIX-in, consumed by group
//      PREFIX-app; for each batch one transaction writes "o-VALUE" to
//      PREFIX-out and the batch's next offset to the group (sendOffsets), and
//      commits. Then 6 more records, consumed by a fresh member of the group,
//      transformed and sent the same way but aborted. Then a third member
//      consumes again and commits. The group's committed offsets are read
//      after each step, and once while a transaction's offsets are pending.
import kafkajs from "kafkajs";

const { Kafka, logLevel } = kafkajs;
const [bootstrap, prefix] = process.argv.slice(2);
if (!bootstrap || !prefix) {
  throw new Error("usage: node transactions.mjs BOOTSTRAP PREFIX");
}
const WATCHDOG_MS = 75_000;
const PARTITIONS = 3;
const txTopic = `${prefix}-tx`;
const inTopic = `${prefix}-in`;
const outTopic = `${prefix}-out`;
const appGroup = `${prefix}-app`;

let step = "start";
const watchdog = setTimeout(() => {
  process.stderr.write(`transactions.mjs still running after ${WATCHDOG_MS} ms; giving up (at: ${step})\n`);
  process.exit(3);
}, WATCHDOG_MS);

const kafka = new Kafka({
  clientId: "veltrix-txn-tests",
  brokers: bootstrap.split(","),
  connectionTimeout: 5_000,
  requestTimeout: 15_000,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 },
  logLevel: logLevel.WARN,
  logCreator: () => ({ namespace, level, log }) => {
    process.stderr.write(`kafkajs ${level} ${namespace}: ${JSON.stringify(log)}\n`);
  },
});

/** Reads every partition of `topic` until its "end" record; the values in log order per partition. */
async function readUntilEnd(topic, readUncommitted) {
  const consumer = kafka.consumer({
    groupId: `${prefix}-reader-${readUncommitted ? "uncommitted" : "committed"}-${topic}`,
    readUncommitted,
    maxWaitTimeInMs: 200,
  });
  const got = Object.fromEntries(Array.from({ length: PARTITIONS }, (_, p) => [p, []]));
  const ended = new Set();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let done;
    const finished = new Promise((resolve) => {
      done = resolve;
    });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const value = message.value.toString();
        got[partition].push(value);
        if (value === "end") ended.add(partition);
        if (ended.size === PARTITIONS) done();
      },
    });
    await finished;
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/** The group's committed offsets of PREFIX-in, by partition (-1: none). */
async function committedOffsets(admin) {
  const [entry] = await admin.fetchOffsets({ groupId: appGroup, topics: [inTopic] });
  return entry.partitions
    .sort((a, b) => a.partition - b.partition)
    .map((p) => Number(p.offset));
}

/**
 * One member of the app group consumes `want` records of PREFIX-in from the
 * group's committed offsets (the beginning if none); each batch is sent to
 * PREFIX-out with its offsets in one transaction, which `end` commits or
 * aborts. Returns the values consumed, sorted, and the committed offsets the
 * admin saw while the first transaction's offsets were pending.
 */
async function consumeTransformProduce(producer, admin, want, end) {
  const consumer = kafka.consumer({ groupId: appGroup, readUncommitted: false, maxWaitTimeInMs: 200 });
  const consumed = [];
  let pendingSeen = null;
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [inTopic], fromBeginning: true });
    let done;
    let failed;
    const finished = new Promise((resolve, reject) => {
      done = resolve;
      failed = reject;
    });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        if (batch.messages.length === 0) return;
        const last = batch.messages[batch.messages.length - 1];
        const txn = await producer.transaction();
        try {
          await txn.send({
            topic: outTopic,
            acks: -1,
            messages: batch.messages.map((m) => ({ partition: batch.partition, value: `o-${m.value}` })),
          });
          await txn.sendOffsets({
            consumerGroupId: appGroup,
            topics: [
              {
                topic: inTopic,
                partitions: [{ partition: batch.partition, offset: String(Number(last.offset) + 1) }],
              },
            ],
          });
          if (pendingSeen === null) pendingSeen = await committedOffsets(admin);
          if (end === "commit") await txn.commit();
          else await txn.abort();
        } catch (e) {
          failed(e);
          throw e;
        }
        consumed.push(...batch.messages.map((m) => m.value.toString()));
        if (consumed.length >= want) done();
      },
    });
    await finished;
  } finally {
    await consumer.disconnect();
  }
  return { consumed: consumed.sort(), pendingSeen };
}

async function main() {
  const admin = kafka.admin();
  const plain = kafka.producer({ allowAutoTopicCreation: false, idempotent: true });
  const producer = kafka.producer({
    transactionalId: `${prefix}-producer`,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  const out = {};
  await admin.connect();
  await plain.connect();
  await producer.connect();
  try {
    step = "create topics";
    await admin.createTopics({
      topics: [txTopic, inTopic, outTopic].map((topic) => ({ topic, numPartitions: PARTITIONS })),
      waitForLeaders: true,
    });

    step = "commit";
    let txn = await producer.transaction();
    await txn.send({
      topic: txTopic,
      acks: -1,
      messages: Array.from({ length: 30 }, (_, i) => ({ partition: i % PARTITIONS, value: `c${i}` })),
    });
    await txn.commit();

    step = "abort";
    txn = await producer.transaction();
    const aborted = await txn.send({
      topic: txTopic,
      acks: -1,
      messages: Array.from({ length: 30 }, (_, i) => ({ partition: i % PARTITIONS, value: `a${i}` })),
    });
    out.abortedAcked = aborted.map((r) => r.errorCode);
    await txn.abort();

    step = "end records";
    txn = await producer.transaction();
    await txn.send({
      topic: txTopic,
      acks: -1,
      messages: Array.from({ length: PARTITIONS }, (_, p) => ({ partition: p, value: "end" })),
    });
    await txn.commit();

    step = "read committed";
    out.txReadCommitted = await readUntilEnd(txTopic, false);
    step = "read uncommitted";
    out.txReadUncommitted = await readUntilEnd(txTopic, true);

    step = "input records";
    await plain.send({
      topic: inTopic,
      acks: -1,
      messages: Array.from({ length: 30 }, (_, i) => ({ partition: i % PARTITIONS, value: `i${i}` })),
    });
    out.offsetsBefore = await committedOffsets(admin);

    step = "consume-transform-produce, committed";
    out.committedRound = await consumeTransformProduce(producer, admin, 30, "commit");
    out.offsetsAfterCommit = await committedOffsets(admin);

    step = "more input records";
    await plain.send({
      topic: inTopic,
      acks: -1,
      messages: Array.from({ length: 6 }, (_, i) => ({ partition: i % PARTITIONS, value: `j${i}` })),
    });
    step = "consume-transform-produce, aborted";
    out.abortedRound = await consumeTransformProduce(producer, admin, 6, "abort");
    out.offsetsAfterAbort = await committedOffsets(admin);

    step = "consume-transform-produce, again committed";
    out.retriedRound = await consumeTransformProduce(producer, admin, 6, "commit");
    out.offsetsAfterRetry = await committedOffsets(admin);

    step = "end records of the output";
    txn = await producer.transaction();
    await txn.send({
      topic: outTopic,
      acks: -1,
      messages: Array.from({ length: PARTITIONS }, (_, p) => ({ partition: p, value: "end" })),
    });
    await txn.commit();
    step = "read the output, committed";
    out.outReadCommitted = await readUntilEnd(outTopic, false);
  } finally {
    await producer.disconnect();
    await plain.disconnect();
    await admin.disconnect();
  }
  return out;
}

main()
  .then((out) => {
    clearTimeout(watchdog);
    process.stdout.write(JSON.stringify(out) + "\n");
  })
  .catch((e) => {
    process.stderr.write(`failed at ${step}: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  });
