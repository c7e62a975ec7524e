// Client quotas through @platformatic/kafka's Admin client (KIP-546's
// AlterClientQuotas and DescribeClientQuotas), which the librdkafka-based
// clients do not offer. Driven by tests/clients/test_quotas.py:
//
//   node quotas.mjs alter BOOTSTRAP CLIENT_ID PRODUCER_BYTE_RATE
//   node quotas.mjs describe BOOTSTRAP CLIENT_ID
//
// Prints one JSON line: what the broker answered.
import { Admin } from '@platformatic/kafka'

const [command, bootstrap, clientId, rate] = process.argv.slice(2)
const admin = new Admin({ clientId: 'veltrix-quota-admin', bootstrapBrokers: bootstrap.split(','), timeout: 10000, retries: 0 })
try {
  let out
  if (command === 'alter') {
    const entries = await admin.alterClientQuotas({
      entries: [
        {
          entities: [{ entityType: 'client-id', entityName: clientId }],
          ops: [{ key: 'producer_byte_rate', value: Number(rate), remove: false }]
        }
      ]
    })
    out = entries.map(e => ({ errorCode: e.errorCode, entity: e.entity }))
  } else if (command === 'describe') {
    const entries = await admin.describeClientQuotas({
      components: [{ entityType: 'client-id', matchType: 0, match: clientId }]
    })
    out = entries
  } else {
    throw new Error(`unknown command ${command}`)
  }
  console.log(JSON.stringify(out))
} finally {
  await admin.close()
}
