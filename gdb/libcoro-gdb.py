# libcoro's gdb extension: lists coroutines and backtraces them, in a live
# process or a core file, without running code in the process.
#
#   info coroutines             every live coroutine: id, name, state, and
#                               where it is suspended
#   coro bt ID [BT-ARGS]        backtrace of one coroutine
#   coro apply all|ID... CMD    runs CMD on coroutines (as thread apply does);
#                               "coro apply all bt" backtraces every one
#   coro select [ID]            selects a coroutine's frames until the
#                               program resumes (frame, up, info locals)
#   coro gcore [FILE]           gcore, with the coroutine stacks included
#
# gdb auto-loads this file from <datadir>/gdb/auto-load/<libdir>/ when it
# loads libcoro.so.<version>; it may also be `source`d by hand, any number
# of times.
#
# How it works.  The library exports one data symbol, coro_debug_root (see
# include/coro.h), that leads to the table of coroutine descriptors and
# gives the byte offsets of every field read here, so a stripped library
# is enough.  A suspended coroutine's registers are saved in a ucontext_t;
# to backtrace it, an unwinder is switched on that says the innermost frame
# of the selected thread was called by a frame with those registers.  gdb
# then unwinds the coroutine's stack as usual (CFI, debug info), and the
# thread's own frame is left out of what is shown.

import re
import struct

import gdb
import gdb.unwinder

CORO_DEBUG_MAGIC = 0xC0D3B6C0
CORO_DEBUG_VERSION = 2

STATES = ("ready", "running", "normal", "suspended", "finished")

# What lib/overflow.c writes in the uc_flags of an overflowed coroutine's
# saved context, whose registers it replaced with the fault's.
FAULT_MARK = 0x6c756166206f7263
READY, RUNNING, NORMAL, SUSPENDED, FINISHED = range(5)

# struct coro_debug_root, version 2: four uint32_t, two pointers, then
# uint32_t offsets in this order.
ROOT_FIELDS = (
    "chunk_next", "chunk_count", "chunk_first", "coro_size", "coro_seq",
    "coro_id", "coro_name", "coro_name_size", "coro_state", "coro_fn",
    "coro_ctx", "ctx_mcontext", "coro_stack", "coro_guard", "stack_lo",
    "stack_hi",
)


class _Arch(object):
    """Where the saved registers sit in a ucontext_t's uc_mcontext, and the
    names gdb gives them."""

    def __init__(self, sp, pc, regs):
        self.sp = sp        # gdb's name of the stack pointer
        self.pc = pc        # and of the program counter
        self.regs = regs    # (gdb name, offset in uc_mcontext)


# x86_64: gregs[REG_*] (glibc's numbering) at the start of mcontext_t; the
# callee-saved registers, the stack pointer and the resume address.
_X86_64 = _Arch("rsp", "rip", tuple(
    (name, 8 * index) for name, index in (
        ("r12", 4), ("r13", 5), ("r14", 6), ("r15", 7), ("rbp", 10),
        ("rbx", 11), ("rsp", 15), ("rip", 16))))

# aarch64: fault_address, regs[31], sp, pc.  x19-x30 are callee-saved (x29
# the frame pointer, x30 the return address).
_AARCH64 = _Arch("sp", "pc", tuple(
    [("x%d" % n, 8 + 8 * n) for n in range(19, 31)] +
    [("sp", 8 + 8 * 31), ("pc", 8 + 8 * 32)]))


def _arch():
    try:
        name = gdb.selected_inferior().architecture().name()
    except (AttributeError, gdb.error):
        name = gdb.selected_frame().architecture().name()
    if "x86-64" in name or "x86_64" in name:
        return _X86_64
    if "aarch64" in name:
        return _AARCH64
    raise gdb.GdbError("libcoro: no register map for architecture %s" % name)


class _Memory(object):
    """Reads the inferior's memory as the root's fields need it."""

    def __init__(self, ptr_size):
        self.inferior = gdb.selected_inferior()
        self.ptr_size = ptr_size
        endian = gdb.execute("show endian", to_string=True)
        self.order = ">" if "big" in endian else "<"

    def read(self, addr, n):
        return bytes(self.inferior.read_memory(addr, n))

    def u32(self, addr):
        return struct.unpack(self.order + "I", self.read(addr, 4))[0]

    def i32(self, addr):
        return struct.unpack(self.order + "i", self.read(addr, 4))[0]

    def u64(self, addr):
        return struct.unpack(self.order + "Q", self.read(addr, 8))[0]

    def ptr(self, addr):
        fmt = "Q" if self.ptr_size == 8 else "I"
        return struct.unpack(self.order + fmt, self.read(addr, self.ptr_size))[0]


class _Root(object):
    """coro_debug_root, read from the inferior."""

    def __init__(self):
        try:
            addr = int(gdb.parse_and_eval("(unsigned long)&coro_debug_root"))
        except gdb.error:
            raise gdb.GdbError("libcoro: no coro_debug_root symbol: "
                               "is libcoro loaded (start the program first)?")
        probe = _Memory(8)
        magic, version, size, ptr_size = struct.unpack(
            probe.order + "4I", probe.read(addr, 16))
        if magic != CORO_DEBUG_MAGIC:
            raise gdb.GdbError("libcoro: coro_debug_root at 0x%x has a bad "
                               "magic number 0x%x" % (addr, magic))
        if version != CORO_DEBUG_VERSION:
            raise gdb.GdbError("libcoro: coro_debug_root version %d; this "
                               "extension reads version %d"
                               % (version, CORO_DEBUG_VERSION))
        self.mem = mem = _Memory(ptr_size)
        at = addr + 16
        self.chunks = mem.ptr(at)
        at += 2 * ptr_size
        if at + 4 * len(ROOT_FIELDS) > addr + size:
            raise gdb.GdbError("libcoro: coro_debug_root is too short")
        for i, field in enumerate(ROOT_FIELDS):
            setattr(self, field, mem.u32(at + 4 * i))

    def descriptors(self):
        """The address of every live coroutine's descriptor."""
        mem = self.mem
        order = mem.order + "I"
        chunk = mem.ptr(self.chunks)
        seen = set()
        while chunk and chunk not in seen:
            seen.add(chunk)
            count = mem.u32(chunk + self.chunk_count)
            first = chunk + self.chunk_first
            try:
                raw = mem.read(first, count * self.coro_size)
            except gdb.MemoryError:
                raw = None
            for i in range(count):
                desc = first + i * self.coro_size
                if raw is not None:
                    seq = struct.unpack_from(order, raw,
                                             i * self.coro_size + self.coro_seq)[0]
                else:
                    try:
                        seq = mem.u32(desc + self.coro_seq)
                    except gdb.MemoryError:
                        continue  # memory given back: free descriptors
                if seq & 3 == 2:
                    yield desc
            chunk = mem.ptr(chunk + self.chunk_next)

    def stacks(self):
        """(lo, usable) of every live coroutine's stack."""
        for co in self.coroutines():
            if co.hi:
                yield co.lo, co.hi - co.lo

    def coroutines(self):
        """Every live coroutine, by id."""
        found = [_Coro(self, desc) for desc in self.descriptors()]
        found.sort(key=lambda co: co.id)
        return found

    def find(self, arg):
        try:
            wanted = int(gdb.parse_and_eval(arg))
        except gdb.error:
            raise gdb.GdbError("libcoro: %r is not a coroutine id" % arg)
        for co in self.coroutines():
            if co.id == wanted:
                return co
        raise gdb.GdbError("libcoro: no live coroutine with id %d" % wanted)


class _Coro(object):
    """One coroutine, read from the inferior."""

    def __init__(self, root, addr):
        mem = root.mem
        self.root = root
        self.addr = addr
        self.id = mem.u64(addr + root.coro_id)
        raw = mem.read(addr + root.coro_name, root.coro_name_size)
        self.name = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        self.state = mem.i32(addr + root.coro_state)
        self.fn = mem.ptr(addr + root.coro_fn)
        self.mcontext = addr + root.coro_ctx + root.ctx_mcontext
        self._missing = None
        # Overflowed: its saved registers are the fault's, and the thread
        # that ran it is reporting (or has died) on another stack, so no
        # thread has its stack: it is walked like a suspended one.
        self.overflowed = (self.state == RUNNING and
                           mem.u64(addr + root.coro_ctx) == FAULT_MARK)
        self.guard = mem.ptr(addr + root.coro_guard)
        stack = mem.ptr(addr + root.coro_stack)
        self.lo = mem.ptr(stack + root.stack_lo) if stack else 0
        self.hi = mem.ptr(stack + root.stack_hi) if stack else 0

    def state_name(self):
        if 0 <= self.state < len(STATES):
            return STATES[self.state]
        return "state %d" % self.state

    def saved_registers(self, arch):
        """(gdb name, value) of the registers co saved when it switched."""
        end = max(off for _, off in arch.regs) + 8
        raw = self.root.mem.read(self.mcontext, end)
        order = self.root.mem.order + "Q"
        return [(name, struct.unpack_from(order, raw, off)[0])
                for name, off in arch.regs]

    def stack_missing(self):
        """True if co has started but its stack is not in the core file: a
        core written by plain gcore where guards sit inside the stacks'
        mapping, which gcore fails to read and writes as zeros.  The top of
        a started coroutine's stack always holds the return address of
        libcoro's entry code (coro__ctx_trampoline), so it is never all
        zeros."""
        if self._missing is None:
            self._missing = False
            if self.state not in (READY, FINISHED) and self.hi >= self.lo + 512:
                try:
                    top = self.root.mem.read(self.hi - 512, 512)
                    self._missing = not any(bytearray(top))
                except gdb.MemoryError:
                    self._missing = True
        return self._missing

    def on_stack(self, sp):
        """True if sp is on co's stack, or in the guard below it (a thread
        that overflowed the stack stops there)."""
        return self.lo - self.guard <= sp < self.hi

    def thread(self):
        """The thread whose stack pointer is on this coroutine's stack (the
        thread running it), or None."""
        sp_name = _arch().sp
        selected = gdb.selected_thread()
        try:
            for thread in gdb.selected_inferior().threads():
                thread.switch()
                try:
                    sp = int(gdb.newest_frame().read_register(sp_name))
                except gdb.error:
                    continue
                if self.on_stack(sp):
                    return thread
        finally:
            if selected is not None:
                selected.switch()
        return None


def _symbolize(pc):
    """function (file:line), or the address alone."""
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        block = None
    func = block.function if block is not None else None
    name = func.print_name if func is not None else None
    if name is None:
        name = gdb.execute("info symbol 0x%x" % pc, to_string=True).split(" in ")[0]
        name = name.split(" + ")[0].strip()
        if name.startswith("No symbol"):
            return "0x%x" % pc
    sal = gdb.find_pc_line(pc)
    if sal.symtab is not None:
        return "%s (%s:%d)" % (name, sal.symtab.filename, sal.line)
    return name


class _CoroUnwinder(gdb.unwinder.Unwinder):
    """While a coroutine is selected (regs is set), says that the innermost
    real frame of the selected thread was called by a frame whose registers
    are the coroutine's saved ones; at any other time it does nothing."""

    def __init__(self):
        super(_CoroUnwinder, self).__init__("libcoro")
        self.regs = None
        self.arch = None
        self.level = None
        self.thread = None
        self.frame_sp = 0
        self.values = None   # regs as gdb values, made on first use
        self.selected = False   # chosen with "coro select": lasts until resumed
        self.id_sp = None
        self.types = {}      # architecture's pc name -> {register: type}

    def __call__(self, pending):
        if self.regs is None:
            return None
        level = pending.level()
        if self.level is None:
            self.level = level   # the first frame not inlined into another
        if level != self.level:
            return None
        thread = gdb.selected_thread()
        if thread is None or thread.ptid != self.thread:
            return None
        pc = pending.read_register(self.arch.pc)
        if self.values is None:
            # Register types belong to the architecture: looked up once.
            types = self.types.setdefault(self.arch.pc, {})
            if not types:
                for name, _ in self.arch.regs:
                    types[name] = pending.read_register(name).type
            self.values = [(name, gdb.Value(value).cast(types[name]))
                           for name, value in self.regs]
            self.id_sp = gdb.Value(self.frame_sp).cast(types[self.arch.sp])
        # gdb stops at a caller whose frame is inner to (below) its
        # callee's, so this frame's id gets a stack address below the
        # coroutine's whole stack.  It only lives while the coroutine is
        # selected.
        ui = pending.create_unwind_info(_FrameId(self.id_sp, pc))
        for name, value in self.values:
            ui.add_saved_register(name, value)
        return ui


class _FrameId(object):
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


_UNWINDER = _CoroUnwinder()


_STATE = ("arch", "regs", "values", "level", "thread", "frame_sp", "id_sp",
          "selected")


def _activate(co, selected=False):
    """Switches the unwinder on for co; returns the level of co's innermost
    frame (None if its registers lead nowhere).  selected: the user chose co
    with "coro select" (bt then hides the thread's own frame)."""
    u = _UNWINDER
    u.arch = _arch()
    u.regs = co.saved_registers(u.arch)
    u.values = None
    u.level = None
    u.thread = gdb.selected_thread().ptid
    u.frame_sp = co.lo - co.guard
    u.selected = selected
    gdb.invalidate_cached_frames()
    frame = gdb.newest_frame()
    while frame is not None and (u.level is None or frame.level() <= u.level):
        frame = frame.older()
    return frame.level() if frame is not None else None


def _deactivate():
    if _UNWINDER.regs is not None:
        _UNWINDER.regs = None
        _UNWINDER.selected = False
        gdb.invalidate_cached_frames()


class _Selected(object):
    """Context manager: while active, the selected thread's innermost real
    frame is followed by the suspended coroutine co's frames; yields the
    level of co's innermost frame (None if it cannot be unwound).  Puts
    back whatever was selected before (a coroutine chosen with "coro
    select", or none)."""

    def __init__(self, co):
        self.co = co

    def __enter__(self):
        try:
            self.frame = gdb.selected_frame()
        except gdb.error:
            raise gdb.GdbError("libcoro: no thread to show coroutines from "
                               "(the program is not running)")
        self.saved = [getattr(_UNWINDER, k) for k in _STATE]
        try:
            return _activate(self.co)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        for k, v in zip(_STATE, self.saved):
            setattr(_UNWINDER, k, v)
        gdb.invalidate_cached_frames()
        try:
            self.frame.select()
        except (gdb.error, RuntimeError):
            pass
        return False


def _libcoro_frame(frame):
    """True for a frame in libcoro itself (coro_yield, the switch), or
    inlined into one."""
    while frame.type() == gdb.INLINE_FRAME and frame.older() is not None:
        frame = frame.older()
    name = frame.name()
    if name is not None and name.startswith("coro_"):
        return True
    solib = gdb.solib_name(frame.pc())
    return solib is not None and solib.rsplit("/", 1)[-1].startswith("libcoro.")


def _first_user_frame(level):
    """The innermost frame from level on that is not in libcoro itself (the
    frame at level if there is none)."""
    frame = gdb.newest_frame()
    while frame is not None and frame.level() < level:
        frame = frame.older()
    first = frame
    for _ in range(8):
        if frame is None or not _libcoro_frame(frame):
            break
        frame = frame.older()
    return frame if frame is not None else first


def _pc_in_libcoro(pc):
    solib = gdb.solib_name(pc)
    if solib is not None:
        return solib.rsplit("/", 1)[-1].startswith("libcoro.")
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        return False
    func = None
    while block is not None:   # the outermost function: out of inlined ones
        if block.function is not None:
            func = block.function
        block = block.superblock
    return func is not None and func.name.startswith("coro_")


def _where_suspended(co):
    """Where co waits: its innermost frame outside libcoro."""
    pc = dict(co.saved_registers(_arch()))[_arch().pc]
    if not _pc_in_libcoro(pc):
        # The switch saved its caller's return address (the asm backend's
        # tail call): no need to unwind.
        return _symbolize(pc - 1)
    with _Selected(co) as level:
        if level is None:
            return "?"
        frame = _first_user_frame(level)
        # A caller's pc is a return address: the call is just before it.
        pc = frame.pc()
        return _symbolize(pc - 1 if frame.level() > 0 else pc)


def _running_where(thread):
    """Where thread is: its innermost frame outside libcoro."""
    selected = gdb.selected_thread()
    frame = gdb.selected_frame()
    thread.switch()
    try:
        user = _first_user_frame(0)
        pc = user.pc()
        return _symbolize(pc - 1 if user.level() > 0 else pc)
    except gdb.error:
        return "?"
    finally:
        selected.switch()
        frame.select()


_NO_STACK = "? (its stack is not in this core file)"


def _where(co):
    if co.state == READY:
        return "not started: " + _symbolize(co.fn)
    if co.state == FINISHED:
        return "returned from " + _symbolize(co.fn)
    if co.stack_missing():
        return _NO_STACK
    if co.overflowed:
        # The fault's pc is the faulting instruction, not a return address.
        return "overflowed its stack in " + _symbolize(
            dict(co.saved_registers(_arch()))[_arch().pc])
    if co.state == RUNNING:
        thread = co.thread()
        if thread is None:
            return "running (no thread has its stack)"
        return "running in thread %d: %s" % (thread.num, _running_where(thread))
    return _where_suspended(co)


_FRAME_LINE = re.compile(r"^#(\d+)\s+")


def _renumber(text, first):
    """Drops the frames of text (backtrace output) numbered below first and
    numbers the rest from 0."""
    out = []
    for line in text.splitlines():
        m = _FRAME_LINE.match(line)
        if m and int(m.group(1)) >= first:
            line = "#%-2d %s" % (int(m.group(1)) - first, line[m.end():])
            out.append(line)
        elif out:
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def _bt_args(args, first):
    """args of a backtrace command, with a frame count shifted by first."""
    words = gdb.string_to_argv(args)
    for i, w in enumerate(words):
        if re.match(r"^\d+$", w):
            words[i] = str(int(w) + first)
    return " ".join(words)


def _backtrace(co, args):
    """The text of a backtrace of co."""
    if co.state == READY:
        return "Coroutine %d has not started: it will run %s.\n" % (
            co.id, _symbolize(co.fn))
    if co.state == FINISHED:
        return "Coroutine %d has finished (it ran %s).\n" % (
            co.id, _symbolize(co.fn))
    if co.stack_missing():
        return ("Coroutine %d: its stack is not in this core file (write cores "
                "with \"coro gcore\").\n" % co.id)
    if co.state == RUNNING and not co.overflowed:
        thread = co.thread()
        if thread is None:
            return "Coroutine %d is running, but no thread has its stack.\n" % co.id
        selected = gdb.selected_thread()
        frame = gdb.selected_frame()
        thread.switch()
        try:
            return "Coroutine %d is running in thread %d:\n%s" % (
                co.id, thread.num, gdb.execute("backtrace " + args, to_string=True))
        finally:
            selected.switch()
            frame.select()
    with _Selected(co) as level:
        if level is None:
            return "Coroutine %d: its saved registers lead nowhere.\n" % co.id
        text = gdb.execute("backtrace " + _bt_args(args, level), to_string=True)
        if co.overflowed:
            return ("Coroutine %d overflowed its stack; from the fault:\n"
                    % co.id) + _renumber(text, level)
        return _renumber(text, level)


def _header(co):
    return 'Coroutine %d "%s" (%s):' % (co.id, co.name, co.state_name())


class _InfoCoroutines(gdb.Command):
    """List libcoro's live coroutines.
Usage: info coroutines
Shows each coroutine's id, name, state, and where it is: the function and
line where a suspended coroutine waits, the entry function of one not
started yet, the thread running one.  A * marks the coroutine running on
the selected thread."""

    def __init__(self):
        super(_InfoCoroutines, self).__init__("info coroutines", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        cos = _Root().coroutines()
        if not cos:
            gdb.write("No coroutines.\n")
            return
        current = None
        try:
            sp = int(gdb.newest_frame().read_register(_arch().sp))
            current = next((co for co in cos if co.on_stack(sp)), None)
        except gdb.error:
            pass
        width = max([4] + [len(co.name) for co in cos])
        gdb.write("  %-6s %-*s %-10s %s\n" % ("Id", width, "Name", "State", "Where"))
        for co in cos:
            mark = "*" if co is current else " "
            try:
                where = _where(co)
            except gdb.error as e:   # a corrupt context, unreadable memory
                where = "? (%s)" % e
            gdb.write("%s %-6d %-*s %-10s %s\n" % (
                mark, co.id, width, co.name, co.state_name(), where))
        missing = sum(1 for co in cos if co.stack_missing())
        if missing:
            gdb.write("%d coroutine stack%s not in this core file: write cores "
                      "with \"coro gcore\".\n"
                      % (missing, " is" if missing == 1 else "s are"))


class _CoroPrefix(gdb.Command):
    """libcoro coroutine commands: coro bt, coro apply."""

    def __init__(self):
        super(_CoroPrefix, self).__init__("coro", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class _CoroBt(gdb.Command):
    """Backtrace of one coroutine.
Usage: coro bt ID [BACKTRACE-OPTIONS]
ID is a coroutine id from "info coroutines".  The options are those of
the backtrace command (full, a frame count, -frame-arguments all, ...).
A suspended coroutine is unwound from its saved registers; a running one
is the backtrace of the thread running it."""

    def __init__(self):
        super(_CoroBt, self).__init__("coro bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        words = arg.split(None, 1)
        if not words:
            raise gdb.GdbError("usage: coro bt ID [BACKTRACE-OPTIONS]")
        co = _Root().find(words[0])
        gdb.write(_backtrace(co, words[1] if len(words) > 1 else ""))


class _CoroApply(gdb.Command):
    """Run a command on coroutines.
Usage: coro apply all COMMAND
       coro apply ID... COMMAND
For each coroutine (all of them, or the ids given), prints its id, name
and state, then runs COMMAND with the coroutine's innermost frame outside
libcoro selected (the function that called coro_yield or coro_resume).  A backtrace command (bt, backtrace, where, with its options)
shows the coroutine's frames alone, numbered from 0, as "coro bt" does.
Coroutines that have not started or have finished have no frames: only
their state is shown."""

    def __init__(self):
        super(_CoroApply, self).__init__("coro apply", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        words = arg.split()
        root = _Root()
        if words[:1] == ["all"]:
            cos = root.coroutines()
            command = arg.split(None, 1)[1] if len(words) > 1 else ""
        else:
            cos = []
            rest = arg
            while rest and re.match(r"^\d+(\s|$)", rest):
                head, _, rest = rest.partition(" ")
                cos.append(root.find(head))
                rest = rest.lstrip()
            command = rest
        if not cos or not command.strip():
            raise gdb.GdbError("usage: coro apply all|ID... COMMAND")
        name, _, bt_args = command.strip().partition(" ")
        is_bt = name in ("bt", "backtrace", "where")
        for co in cos:
            gdb.write("\n%s\n" % _header(co))
            try:
                self.apply(co, command, is_bt, bt_args, from_tty)
            except gdb.error as e:   # go on with the next coroutine
                gdb.write("%s\n" % e)

    @staticmethod
    def apply(co, command, is_bt, bt_args, from_tty):
        if is_bt or co.state in (READY, FINISHED) or co.stack_missing():
            gdb.write(_backtrace(co, bt_args if is_bt else ""))
        elif co.state == RUNNING and not co.overflowed:
            thread = co.thread()
            if thread is None:
                gdb.write("running, but no thread has its stack\n")
                return
            selected = gdb.selected_thread()
            frame = gdb.selected_frame()
            thread.switch()
            try:
                gdb.execute(command, from_tty)
            finally:
                selected.switch()
                frame.select()
        else:
            with _Selected(co) as level:
                if level is None:
                    gdb.write("its saved registers lead nowhere\n")
                    return
                _first_user_frame(level).select()
                gdb.execute(command, from_tty)


def _core_segments(path):
    """(vaddr, filesz, offset) of each PT_LOAD segment of an ELF core."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if ident[:4] != b"\x7fELF":
            raise gdb.GdbError("libcoro: %s is not an ELF file" % path)
        order = "<" if ident[5] == 1 else ">"
        wide = ident[4] == 2
        if wide:
            phoff, = struct.unpack(order + "Q", ident[32:40])
            shoff, = struct.unpack(order + "Q", ident[40:48])
            phentsize, phnum = struct.unpack(order + "HH", ident[54:58])
            shentsize = struct.unpack(order + "H", ident[58:60])[0]
        else:
            phoff, shoff = struct.unpack(order + "II", ident[28:36])
            phentsize, phnum = struct.unpack(order + "HH", ident[42:46])
            shentsize = struct.unpack(order + "H", ident[46:48])[0]
        if phnum == 0xFFFF:   # PN_XNUM: the count is in section 0's sh_info
            f.seek(shoff)
            sh0 = f.read(shentsize)
            phnum, = struct.unpack(order + "I", sh0[44:48] if wide else sh0[28:32])
        segments = []
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = f.read(phentsize)
            if wide:
                p_type, _, off, vaddr, _, filesz = struct.unpack(order + "IIQQQQ", ph[:40])
            else:
                p_type, off, vaddr, _, filesz = struct.unpack(order + "IIIII", ph[:20])
            if p_type == 1:
                segments.append((vaddr, filesz, off))
        return segments


class _CoroGcore(gdb.Command):
    """Save a core file of the program with its coroutine stacks complete.
Usage: coro gcore [FILE]
Runs gcore FILE (core.PID by default), then writes the memory of every
coroutine stack into the file.  gdb's gcore alone stops copying a mapping
at its first unreadable page, and the guard pages libcoro installs with
MADV_GUARD_INSTALL (Linux 6.13 and later) are unreadable pages inside the
mapping that holds the stacks, so its cores lack every coroutine stack."""

    def __init__(self):
        super(_CoroGcore, self).__init__("coro gcore", gdb.COMMAND_FILES,
                                         gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        root = _Root()
        args = gdb.string_to_argv(arg)
        path = args[0] if args else "core.%d" % gdb.selected_inferior().pid
        gdb.execute("gcore " + path, from_tty)
        segments = _core_segments(path)
        copied = 0
        with open(path, "r+b") as f:
            for lo, usable in root.stacks():
                for vaddr, filesz, off in segments:
                    if vaddr <= lo and lo + usable <= vaddr + filesz:
                        break
                else:
                    continue
                try:
                    data = root.mem.read(lo, usable)
                except gdb.MemoryError:
                    continue
                f.seek(off + lo - vaddr)
                f.write(data)
                copied += 1
        gdb.write("Wrote %d coroutine stacks into %s\n" % (copied, path))


class _CoroSelect(gdb.Command):
    """Select a suspended coroutine's frames, as "thread" selects a thread's.
Usage: coro select ID
       coro select
With ID, the frames of suspended (or normal) coroutine ID follow the
selected thread's innermost frame, and its innermost frame outside libcoro
is selected: bt, frame, up, down, info locals, print work in it.  bt does
not show the thread's frame, but frame numbers count it: the coroutine's
frames are numbered from 1.  The selection ends when the program is
resumed, or with "coro select" alone: say that before step, next or
finish, which work on the thread's own frames."""

    def __init__(self):
        super(_CoroSelect, self).__init__("coro select", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        if not arg.strip():
            _deactivate()
            try:
                gdb.newest_frame().select()
            except gdb.error:
                pass
            return
        co = _Root().find(arg.strip())
        if co.stack_missing():
            raise gdb.GdbError("libcoro: the stack of coroutine %d is not in "
                               "this core file" % co.id)
        if co.state not in (SUSPENDED, NORMAL) and not co.overflowed:
            raise gdb.GdbError(
                "libcoro: coroutine %d is %s: only a suspended or normal "
                "coroutine has saved frames%s" % (
                    co.id, co.state_name(),
                    " (a running one is its thread's: see info coroutines)"
                    if co.state == RUNNING else ""))
        try:
            gdb.selected_frame()
        except gdb.error:
            raise gdb.GdbError("libcoro: no thread to show coroutines from "
                               "(the program is not running)")
        try:
            level = _activate(co, selected=True)
        except BaseException:
            _deactivate()
            raise
        if level is None:
            _deactivate()
            raise gdb.GdbError("libcoro: the saved registers of coroutine %d "
                               "lead nowhere" % co.id)
        _first_user_frame(level).select()
        gdb.write("[Coroutine %d \"%s\" selected]\n" % (co.id, co.name))
        gdb.execute("frame", from_tty)


class _HideThreadFrame(object):
    """Frame filter: while a coroutine is chosen with "coro select", bt
    leaves out the thread's frames that only lead to the coroutine's."""

    def __init__(self):
        self.name = "libcoro"
        self.priority = 100
        self.allowed = True

    # On only while a coroutine is selected: with no filter on, gdb prints
    # backtraces itself (with a filter, "bt full" loses its "No locals.").
    @property
    def enabled(self):
        return self.allowed and _UNWINDER.selected and _UNWINDER.regs is not None

    @enabled.setter
    def enabled(self, value):   # enable/disable frame-filter
        self.allowed = bool(value)

    def filter(self, frames):
        u = _UNWINDER
        if u.regs is None or not u.selected or u.level is None:
            return frames
        return (f for f in frames if f.inferior_frame().level() > u.level)


def _on_resume(event):
    if _UNWINDER.selected:
        _deactivate()


def _register():
    # Loading this file again replaces the unwinder and the commands.
    gdb.unwinder.register_unwinder(None, _UNWINDER, replace=True)
    _InfoCoroutines()
    _CoroPrefix()
    _CoroBt()
    _CoroApply()
    _CoroGcore()
    _CoroSelect()
    gdb.frame_filters["libcoro"] = _HideThreadFrame()
    previous = getattr(gdb, "_libcoro_on_resume", None)
    if previous is not None:
        gdb.events.cont.disconnect(previous)
    gdb.events.cont.connect(_on_resume)
    gdb._libcoro_on_resume = _on_resume


_register()
