from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PingRequest(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("message", "server_time_ns", "worker_id", "pid")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    message: str
    server_time_ns: int
    worker_id: str
    pid: int
    def __init__(self, message: _Optional[str] = ..., server_time_ns: _Optional[int] = ..., worker_id: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ToolSpec(_message.Message):
    __slots__ = ("name", "description", "streaming", "is_async")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    IS_ASYNC_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    streaming: bool
    is_async: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., streaming: bool = ..., is_async: bool = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("adapter", "worker_id", "pid", "tools")
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    adapter: str
    worker_id: str
    pid: int
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    def __init__(self, adapter: _Optional[str] = ..., worker_id: _Optional[str] = ..., pid: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ...) -> None: ...

class ExecuteToolRequest(_message.Message):
    __slots__ = ("request_id", "session_id", "tool", "args_json", "binary", "deadline_unix_s", "metadata", "session_moved_from")
    class BinaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_MOVED_FROM_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    session_id: str
    tool: str
    args_json: bytes
    binary: _containers.ScalarMap[str, bytes]
    deadline_unix_s: float
    metadata: _containers.ScalarMap[str, str]
    session_moved_from: str
    def __init__(self, request_id: _Optional[str] = ..., session_id: _Optional[str] = ..., tool: _Optional[str] = ..., args_json: _Optional[bytes] = ..., binary: _Optional[_Mapping[str, bytes]] = ..., deadline_unix_s: _Optional[float] = ..., metadata: _Optional[_Mapping[str, str]] = ..., session_moved_from: _Optional[str] = ...) -> None: ...

class ToolFailure(_message.Message):
    __slots__ = ("category", "type", "message", "traceback")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    category: str
    type: str
    message: str
    traceback: str
    def __init__(self, category: _Optional[str] = ..., type: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class ExecuteToolResponse(_message.Message):
    __slots__ = ("request_id", "result_json", "binary_result", "error", "execution_time_ms", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    BINARY_RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    result_json: bytes
    binary_result: bytes
    error: ToolFailure
    execution_time_ms: float
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., result_json: _Optional[bytes] = ..., binary_result: _Optional[bytes] = ..., error: _Optional[_Union[ToolFailure, _Mapping]] = ..., execution_time_ms: _Optional[float] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExecuteBatchRequest(_message.Message):
    __slots__ = ("request_id", "session_id", "tool", "args_json", "deadline_unix_s", "session_moved_from")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    SESSION_MOVED_FROM_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    session_id: str
    tool: str
    args_json: bytes
    deadline_unix_s: float
    session_moved_from: str
    def __init__(self, request_id: _Optional[str] = ..., session_id: _Optional[str] = ..., tool: _Optional[str] = ..., args_json: _Optional[bytes] = ..., deadline_unix_s: _Optional[float] = ..., session_moved_from: _Optional[str] = ...) -> None: ...

class ExecuteBatchReply(_message.Message):
    __slots__ = ("results_json", "failures", "error")
    class FailuresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: ToolFailure
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[ToolFailure, _Mapping]] = ...) -> None: ...
    RESULTS_JSON_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    results_json: bytes
    failures: _containers.MessageMap[int, ToolFailure]
    error: ToolFailure
    def __init__(self, results_json: _Optional[bytes] = ..., failures: _Optional[_Mapping[int, ToolFailure]] = ..., error: _Optional[_Union[ToolFailure, _Mapping]] = ...) -> None: ...

class ToolChunk(_message.Message):
    __slots__ = ("request_id", "chunk_id", "data_json", "is_final", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    chunk_id: int
    data_json: bytes
    is_final: bool
    error: ToolFailure
    def __init__(self, request_id: _Optional[str] = ..., chunk_id: _Optional[int] = ..., data_json: _Optional[bytes] = ..., is_final: bool = ..., error: _Optional[_Union[ToolFailure, _Mapping]] = ...) -> None: ...

class InitializeSessionRequest(_message.Message):
    __slots__ = ("session_id", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class InitializeSessionResponse(_message.Message):
    __slots__ = ("success", "error_message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error_message: str
    def __init__(self, success: bool = ..., error_message: _Optional[str] = ...) -> None: ...

class CleanupSessionRequest(_message.Message):
    __slots__ = ("session_id", "force")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    force: bool
    def __init__(self, session_id: _Optional[str] = ..., force: bool = ...) -> None: ...

class CleanupSessionResponse(_message.Message):
    __slots__ = ("success", "resources_cleaned")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_CLEANED_FIELD_NUMBER: _ClassVar[int]
    success: bool
    resources_cleaned: int
    def __init__(self, success: bool = ..., resources_cleaned: _Optional[int] = ...) -> None: ...

class CancelToolRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CancelToolResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: bool = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("client_time_ns",)
    CLIENT_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    client_time_ns: int
    def __init__(self, client_time_ns: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("server_time_ns", "pid", "in_flight", "rss_bytes", "requests_served")
    SERVER_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_SERVED_FIELD_NUMBER: _ClassVar[int]
    server_time_ns: int
    pid: int
    in_flight: int
    rss_bytes: int
    requests_served: int
    def __init__(self, server_time_ns: _Optional[int] = ..., pid: _Optional[int] = ..., in_flight: _Optional[int] = ..., rss_bytes: _Optional[int] = ..., requests_served: _Optional[int] = ...) -> None: ...

class HostToolRequest(_message.Message):
    __slots__ = ("name", "args_json", "session_id", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    args_json: bytes
    session_id: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., args_json: _Optional[bytes] = ..., session_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class HostToolResponse(_message.Message):
    __slots__ = ("result_json", "error")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result_json: bytes
    error: ToolFailure
    def __init__(self, result_json: _Optional[bytes] = ..., error: _Optional[_Union[ToolFailure, _Mapping]] = ...) -> None: ...
