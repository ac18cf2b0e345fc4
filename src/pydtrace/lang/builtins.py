"""D's predefined identifiers: built-in variables, subroutines, actions and
aggregating functions, with their prototypes.

A prototype is written `ret(param, param, [optional], ...)`; `@` means "any
type", `...` a variable tail. The kind decides where a name may be used:
'func' (a subroutine: an expression with a value), 'action' (a statement of
its own) or 'agg' (only as `@x[...] = f(...)`).
"""

from __future__ import annotations

from pydtrace.lang.dataclass import dataclass

VARIABLES: dict[str, str] = {
    **{f"arg{i}": "int64_t" for i in range(10)},
    "caller": "uintptr_t",
    "cpu": "processorid_t",
    "curcpu": "cpuinfo_t *",
    "curthread": "void *",
    "curlwpsinfo": "lwpsinfo_t *",
    "curpsinfo": "psinfo_t *",
    "cwd": "string",  # the current process's working directory (procfs.d's inline)
    "epid": "uint64_t",
    "errno": "int",
    "execname": "string",
    "gid": "gid_t",
    "id": "uint_t",
    "ipl": "uint_t",
    "pid": "pid_t",
    "ppid": "pid_t",
    "probefunc": "string",
    "probemod": "string",
    "probename": "string",
    "probeprov": "string",
    "root": "string",  # the current process's root directory (procfs.d's inline)
    "stackdepth": "uint32_t",
    "tid": "id_t",
    "timestamp": "uint64_t",
    "ucaller": "uint64_t",
    "uid": "uid_t",
    "ustackdepth": "uint32_t",
    "vtimestamp": "uint64_t",
    "walltimestamp": "int64_t",
}


@dataclass(frozen=True)
class Builtin:
    name: str
    kind: str  # 'func', 'action', 'agg'
    proto: str  # e.g. "string(const char *, int, [int])"
    destructive: bool = False


_TABLE = """
func alloca void *(size_t)
func basename string(const char *)
func bcopy void(void *, void *, size_t)
action breakpoint void() destructive
action chill void(int) destructive
func cleanpath string(const char *)
action clear void(@)
action commit void(int)
func copyin void *(uintptr_t, size_t)
func copyinstr string(uintptr_t, [size_t])
func copyinto void(uintptr_t, size_t, void *)
func copyout void(void *, uintptr_t, size_t) destructive
func copyoutstr void(char *, uintptr_t, size_t) destructive
agg count void()
func d_path string(struct path *)
action denormalize void(@)
func dirname string(const char *)
action discard void(int)
action exit void(int)
action freopen void(@, ...) destructive
action ftruncate void()
action func _symaddr(uintptr_t)
func getmajor dev_t(dev_t)
func getminor dev_t(dev_t)
func htonl uint32_t(uint32_t)
func htonll uint64_t(uint64_t)
func htons uint16_t(uint16_t)
func index int(const char *, const char *, [int])
func inet_ntoa string(void *)
func inet_ntoa6 string(void *, [int])
func inet_ntop string(int, void *)
action jstack stack([uint32_t], [uint32_t])
func link_ntop string(int, void *)
agg llquantize void(@, int32_t, int32_t, int32_t, int32_t, ...)
func lltostr string(int64_t, [int])
agg lquantize void(@, int32_t, int32_t, ...)
agg max void(@)
agg min void(@)
agg avg void(@)
agg stddev void(@)
agg sum void(@)
agg quantize void(@, ...)
action mod _symaddr(uintptr_t)
func mutex_owned int(struct mutex *)
func mutex_owner struct task_struct *(struct mutex *)
func mutex_type_adaptive int(struct mutex *)
func mutex_type_spin int(struct mutex *)
action normalize void(@, uint64_t)
func ntohl uint32_t(uint32_t)
func ntohll uint64_t(uint64_t)
func ntohs uint16_t(uint16_t)
action panic void() destructive
action pcap void(void *, int)
action print void(void *)
action printa void(@, ...)
action printf void(string, ...)
func progenyof int(pid_t)
action raise void(int) destructive
func rand int()
func rindex int(const char *, const char *, [int])
func rw_iswriter int(void *)
func rw_read_held int(void *)
func rw_write_held int(void *)
action setopt void(const char *, [const char *])
action speculate void(int)
func speculation int()
action stack stack([uint32_t])
action stop void() destructive
func strchr string(const char *, char)
func strjoin string(const char *, const char *)
func strlen size_t(const char *)
func strrchr string(const char *, char)
func strstr string(const char *, const char *)
func strtok string(const char *, const char *)
func strtoll int64_t(const char *, [int])
func substr string(const char *, int, [int])
action sym _symaddr(uintptr_t)
action system void(@, ...) destructive
func toupper string(const char *)
func tolower string(const char *)
action trace void(@)
action tracemem void(@, size_t, [size_t])
action trunc void(@, [int64_t])
action uaddr _usymaddr(uintptr_t)
action ufunc _usymaddr(uintptr_t)
action umod _usymaddr(uintptr_t)
action ustack stack([uint32_t], [uint32_t])
action usym _usymaddr(uintptr_t)
"""


def _load() -> dict[str, Builtin]:
    table: dict[str, Builtin] = {}
    for line in _TABLE.strip().splitlines():
        kind, name, proto = line.split(" ", 2)
        destructive = proto.endswith(" destructive")
        if destructive:
            proto = proto[: -len(" destructive")]
        table[name] = Builtin(name, kind, proto, destructive)
    return table


FUNCTIONS: dict[str, Builtin] = _load()


@dataclass(frozen=True)
class Prototype:
    ret: str
    params: list[str]  # type names; '@' = any
    required: int  # how many params are not optional
    varargs: bool


def prototype(b: Builtin) -> Prototype:
    ret, rest = b.proto.split("(", 1)
    params: list[str] = []
    required = 0
    varargs = False
    for p in (x.strip() for x in rest.rstrip(")").split(",")):
        if not p:
            continue
        if p == "...":
            varargs = True
        elif p.startswith("["):
            params.append(p.strip("[]"))
        else:
            params.append(p)
            required += 1
    return Prototype(ret.strip(), params, required, varargs)
