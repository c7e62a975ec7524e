// KafkaJS over SASL_SSL: node sasl.mjs BROKER CA_FILE MECHANISM USER PASSWORD TOPIC COUNT
// Produces COUNT records (acks=all), reads them back from the beginning, and
// prints {"consumed": [...]} as one JSON line.
import { readFileSync } from "node:fs";
import kafkajs from "kafkajs";

const { Kafka, logLevel } = kafkajs;
const [broker, caFile, mechanism, username, password, topic, countText] = process.argv.slice(2);
const count = Number(countText);
const kafka = new Kafka({
  clientId: "veltrix-sasl-test",
  brokers: [broker],
  ssl: { ca: [readFileSync(caFile, "utf8")] },
  sasl: { mechanism, username, password },
  logLevel: logLevel.ERROR,
});

const producer = kafka.producer({ allowAutoTopicCreation: false });
await producer.connect();
await producer.send({
  topic,
  acks: -1,
  messages: Array.from({ length: count }, (_, i) => ({ value: `js-${i}` })),
});
await producer.disconnect();

const consumer = kafka.consumer({ groupId: `sasl-${Date.now()}` });
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
const consumed = [];
await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`only ${consumed.length} of ${count} records in 60 s`)), 60000);
  consumer
    .run({
      eachMessage: async ({ message }) => {
        consumed.push(message.value.toString());
        if (consumed.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    })
    .catch(reject);
});
await consumer.disconnect();
console.log(JSON.stringify({ consumed }));
