"""InitProducerId (idempotent producers) and DescribeProducers.

A producer without a transactional id gets a fresh producer id with epoch 0 on every
InitProducerId, as Kafka gives it (also when it asks to bump an epoch with v3+: an
idempotent producer that hit an unrecoverable sequence error simply starts over with a new
id). Ids come from a block reserved in the coordination service; when the block is used up
`init_producer_id` returns None and the runtime reserves the next one and asks again.
Transactional ids need the transaction coordinator, which comes with transactions:
COORDINATOR_NOT_AVAILABLE says so (and FindCoordinator for key type 1 answers the same).
"""

from __future__ import annotations

from zoolog.broker.broker import Broker
from zoolog.protocol.kafka._generated.describe_producers import (
    DescribeProducersRequest,
    DescribeProducersResponse,
)
from zoolog.protocol.kafka._generated.init_producer_id import (
    InitProducerIdRequest,
    InitProducerIdResponse,
)
from zoolog.protocol.kafka.errors import Err, KafkaError


def init_producer_id(broker: Broker,
                     request: InitProducerIdRequest) -> InitProducerIdResponse | None:
    if request.transactional_id is not None:
        return InitProducerIdResponse(error_code=Err.COORDINATOR_NOT_AVAILABLE,
                                      producer_id=-1, producer_epoch=-1)
    pid = broker.producer_ids.take()
    if pid is None:
        return None
    return InitProducerIdResponse(producer_id=pid, producer_epoch=0)


def describe_producers(broker: Broker, request: DescribeProducersRequest
                       ) -> DescribeProducersResponse:
    response = DescribeProducersResponse()
    for topic in request.topics:
        answers: list[DescribeProducersResponse.PartitionResponse] = []
        response.topics.append(DescribeProducersResponse.TopicResponse(
            name=topic.name, partitions=answers))
        for index in topic.partition_indexes:
            answer = DescribeProducersResponse.PartitionResponse(partition_index=index)
            answers.append(answer)
            try:
                partition = broker.partition(topic.name, index)
            except KafkaError as exc:
                answer.error_code = exc.code
                answer.error_message = exc.message or None
                continue
            for entry in partition.producers.entries.values():
                answer.active_producers.append(DescribeProducersResponse.ProducerState(
                    producer_id=entry.producer_id, producer_epoch=entry.producer_epoch,
                    last_sequence=entry.last_seq, last_timestamp=entry.last_timestamp_ms,
                    coordinator_epoch=entry.coordinator_epoch,
                    current_txn_start_offset=entry.txn_first_offset))
    return response
