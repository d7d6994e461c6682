// Check suite of the C++ side: each coroutine has its own exception
// state (the exceptions being handled and the count in flight), as a
// thread does, because every switch saves and restores the C++ runtime's
// per-thread state (lib/cxx.h); and an exception that escapes a
// coroutine's function names the coroutine before std::terminate aborts
// (lib/cxx.c).
#include <check.h>
#include <coro.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace {

struct Tagged {
    std::string tag;
};

// The tag of the exception being handled here, "" when none.
std::string current_tag()
{
    std::exception_ptr p = std::current_exception();
    if (!p)
        return "";
    try {
        std::rethrow_exception(p);
    } catch (const Tagged &t) {
        return t.tag;
    } catch (...) {
        return "?";
    }
}

// What `throw;` rethrows here (must be called inside a handler).
std::string rethrown_tag()
{
    try {
        throw;
    } catch (const Tagged &t) {
        return t.tag;
    } catch (...) {
        return "?";
    }
}

void *catch_and_yield(void *arg)
{
    std::string *seen = static_cast<std::string *>(arg);
    try {
        throw Tagged{"inner"};
    } catch (const Tagged &) {
        coro_yield(nullptr, nullptr); // suspended inside the handler
        seen[0] = current_tag();
        seen[1] = rethrown_tag();
    }
    seen[2] = current_tag(); // the handler is done: nothing
    return nullptr;
}

} // namespace

START_TEST(caught_exception_stays_in_its_coroutine)
{
    coro_t *co;
    std::string seen[3];

    ck_assert_int_eq(coro_create(&co, catch_and_yield, seen, nullptr), 0);
    ck_assert_int_eq(coro_resume(co, nullptr, nullptr), 0);
    // The coroutine is suspended in its catch block: not ours.
    std::string here = current_tag();
    ck_assert_str_eq(here.c_str(), "");
    ck_assert(std::current_exception() == nullptr);
    ck_assert_int_eq(coro_resume(co, nullptr, nullptr), 0);
    ck_assert_str_eq(seen[0].c_str(), "inner");
    ck_assert_str_eq(seen[1].c_str(), "inner");
    ck_assert_str_eq(seen[2].c_str(), "");
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

START_TEST(resumer_keeps_its_own_exception)
{
    coro_t *co;
    std::string seen[3], mine, rethrown, after;

    ck_assert_int_eq(coro_create(&co, catch_and_yield, seen, nullptr), 0);
    try {
        throw Tagged{"outer"};
    } catch (const Tagged &) {
        ck_assert_int_eq(coro_resume(co, nullptr, nullptr), 0);
        // The coroutine caught "inner" and yielded inside its handler.
        mine = current_tag();
        rethrown = rethrown_tag();
        ck_assert_int_eq(coro_resume(co, nullptr, nullptr), 0);
        after = current_tag();
    }
    ck_assert_str_eq(mine.c_str(), "outer");
    ck_assert_str_eq(rethrown.c_str(), "outer");
    ck_assert_str_eq(after.c_str(), "outer");
    ck_assert_str_eq(seen[0].c_str(), "inner");
    ck_assert_str_eq(seen[1].c_str(), "inner");
    ck_assert_str_eq(seen[2].c_str(), "");
    ck_assert(std::current_exception() == nullptr);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

namespace {

int in_flight_seen = -1;

// Yields from a destructor run by stack unwinding: an exception is in
// flight in this coroutine, and only here.
struct YieldsWhileUnwinding {
    ~YieldsWhileUnwinding()
    {
        in_flight_seen = std::uncaught_exceptions();
        coro_yield(nullptr, nullptr);
    }
};

void *unwind_and_yield(void *arg)
{
    int *caught = static_cast<int *>(arg);
    try {
        YieldsWhileUnwinding y;
        throw Tagged{"unwinding"};
    } catch (const Tagged &t) {
        *caught = t.tag == "unwinding";
    }
    return nullptr;
}

} // namespace

START_TEST(uncaught_exceptions_counted_per_coroutine)
{
    coro_t *co;
    int caught = 0;

    ck_assert_int_eq(coro_create(&co, unwind_and_yield, &caught, nullptr), 0);
    ck_assert_int_eq(coro_resume(co, nullptr, nullptr), 0);
    ck_assert_int_eq(in_flight_seen, 1);
    ck_assert_int_eq(std::uncaught_exceptions(), 0); // its, not ours
    ck_assert_int_eq(coro_state(co), CORO_SUSPENDED);
    ck_assert_int_eq(coro_resume(co, nullptr, nullptr), 0); // unwinding goes on
    ck_assert_int_eq(caught, 1);
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    ck_assert_int_eq(std::uncaught_exceptions(), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

namespace {

// Two coroutines, each in its own handler, taking turns.
void *turns(void *arg)
{
    const char *tag = static_cast<const char *>(arg);
    std::string bad;
    try {
        throw Tagged{tag};
    } catch (const Tagged &) {
        for (int i = 0; i < 100; i++) {
            coro_yield(nullptr, nullptr);
            if (current_tag() != tag || rethrown_tag() != tag)
                bad = current_tag();
        }
    }
    return bad.empty() ? nullptr : arg;
}

} // namespace

START_TEST(coroutines_in_handlers_take_turns)
{
    coro_t *a, *b;
    char ta[] = "a", tb[] = "b";
    void *ra = ta, *rb = tb;

    ck_assert_int_eq(coro_create(&a, turns, ta, nullptr), 0);
    ck_assert_int_eq(coro_create(&b, turns, tb, nullptr), 0);
    while (coro_state(a) != CORO_FINISHED || coro_state(b) != CORO_FINISHED) {
        if (coro_state(a) != CORO_FINISHED)
            ck_assert_int_eq(coro_resume(a, nullptr, &ra), 0);
        if (coro_state(b) != CORO_FINISHED)
            ck_assert_int_eq(coro_resume(b, nullptr, &rb), 0);
        ck_assert(std::current_exception() == nullptr);
    }
    ck_assert_ptr_null(ra);
    ck_assert_ptr_null(rb);
    ck_assert_int_eq(coro_destroy(a), 0);
    ck_assert_int_eq(coro_destroy(b), 0);
}
END_TEST

namespace {

void work(const char *what)
{
    throw std::runtime_error(what);
}

// coro_resume(3)'s pattern: catch in the coroutine, hand the exception
// to the resumer as a std::exception_ptr (here through the argument).
void *task(void *arg)
{
    auto *error = static_cast<std::exception_ptr *>(arg);

    try {
        work("from the coroutine");
    } catch (...) {
        *error = std::current_exception();
    }
    return nullptr;
}

} // namespace

START_TEST(exception_ptr_carries_exception_to_resumer)
{
    std::exception_ptr error;
    std::string what;
    coro_t *co;

    ck_assert_int_eq(coro_create(&co, task, &error, nullptr), 0);
    ck_assert_int_eq(coro_resume(co, nullptr, nullptr), 0);
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert(error != nullptr);
    ck_assert(std::current_exception() == nullptr);
    try {
        std::rethrow_exception(error);
    } catch (const std::runtime_error &e) {
        what = e.what();
    }
    ck_assert_str_eq(what.c_str(), "from the coroutine");
}
END_TEST

// ---------------------------------------------- std::terminate in a coroutine

namespace {

// What a child process wrote on stderr and how it ended.
struct Outcome {
    std::string err;
    int status;
};

// Runs body in a child process whose stderr goes to a pipe; the child
// exits 0 if body returns.
template <typename F> Outcome in_child(F body)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        // Check's SIGALRM handler (its timeout) would kill the whole
        // process group; our own alarm is the child's timeout.
        signal(SIGALRM, SIG_DFL);
        alarm(20);
        close(fds[0]);
        if (dup2(fds[1], STDERR_FILENO) < 0)
            _exit(125);
        close(fds[1]);
        body();
        _exit(0);
    }
    close(fds[1]);
    Outcome o{"", 0};
    char buf[512];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) != 0) {
        if (n < 0) {
            ck_assert_int_eq(errno, EINTR);
            continue;
        }
        o.err.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &o.status, 0), pid);
    return o;
}

void *throws_uncaught(void *)
{
    throw std::runtime_error("nobody catches this");
}

void *throws_and_catches(void *arg)
{
    int *caught = static_cast<int *>(arg);
    try {
        throw std::runtime_error("caught");
    } catch (const std::runtime_error &e) {
        *caught = std::strcmp(e.what(), "caught") == 0;
    }
    return nullptr;
}

void *resumes_thrower(void *arg)
{
    coro_resume(static_cast<coro_t *>(arg), nullptr, nullptr);
    return nullptr;
}

coro_t *named(coro_fn fn, void *arg, const char *name)
{
    coro_attr_t attr;
    coro_t *co;

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_name(&attr, name), 0);
    ck_assert_int_eq(coro_create(&co, fn, arg, &attr), 0);
    return co;
}

std::string line_for(const coro_t *co)
{
    return "coro: std::terminate in coroutine #" + std::to_string(coro_id(co)) +
           " \"" + coro_name(co) + "\"\n";
}

void mine()
{
    static const char msg[] = "my handler\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(n == sizeof msg - 1 ? 3 : 4);
}

} // namespace

START_TEST(escaping_exception_names_its_coroutine)
{
    // Made here, resumed in the child: the parent knows its id.
    coro_t *co = named(throws_uncaught, nullptr, "thrower");
    std::string want = line_for(co);

    Outcome o = in_child([co] { coro_resume(co, nullptr, nullptr); });
    ck_assert_msg(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT,
                  "status %#x, stderr: %s", o.status, o.err.c_str());
    // Our line first, then the runtime's own report.
    ck_assert_msg(o.err.compare(0, want.size(), want) == 0, "stderr: %s", o.err.c_str());
#if defined(__GLIBCXX__)
    ck_assert_msg(o.err.find("std::runtime_error", want.size()) != std::string::npos,
                  "stderr: %s", o.err.c_str());
    ck_assert_msg(o.err.find("nobody catches this") != std::string::npos,
                  "stderr: %s", o.err.c_str());
#endif
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

START_TEST(escaping_exception_names_the_innermost_coroutine)
{
    coro_t *inner = named(throws_uncaught, nullptr, "inner");
    coro_t *outer = named(resumes_thrower, inner, "outer");
    std::string want = line_for(inner);

    Outcome o = in_child([outer] { coro_resume(outer, nullptr, nullptr); });
    ck_assert_msg(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT,
                  "status %#x, stderr: %s", o.status, o.err.c_str());
    ck_assert_msg(o.err.compare(0, want.size(), want) == 0, "stderr: %s", o.err.c_str());
    ck_assert_msg(o.err.find("\"outer\"") == std::string::npos, "stderr: %s", o.err.c_str());
    ck_assert_int_eq(coro_destroy(inner), 0);
    ck_assert_int_eq(coro_destroy(outer), 0);
}
END_TEST

START_TEST(caught_exception_prints_nothing)
{
    Outcome o = in_child([] {
        int caught = 0;
        coro_t *co = named(throws_and_catches, &caught, "catcher");
        if (coro_resume(co, nullptr, nullptr) != 0 || coro_state(co) != CORO_FINISHED ||
            !caught || coro_destroy(co) != 0)
            _exit(1);
    });
    ck_assert_msg(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0,
                  "status %#x, stderr: %s", o.status, o.err.c_str());
    ck_assert_str_eq(o.err.c_str(), "");
}
END_TEST

START_TEST(terminate_outside_coroutines_just_chains)
{
    Outcome o = in_child([] {
        coro_t *co = named(throws_and_catches, nullptr, "unused");
        coro_destroy(co); // libcoro's handler is installed by now
        std::terminate();
    });
    ck_assert_msg(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT,
                  "status %#x, stderr: %s", o.status, o.err.c_str());
    ck_assert_msg(o.err.find("coro:") == std::string::npos, "stderr: %s", o.err.c_str());
}
END_TEST

START_TEST(handler_set_later_replaces_ours)
{
    coro_t *co = named(throws_uncaught, nullptr, "thrower");

    Outcome o = in_child([co] {
        std::set_terminate(mine); // after libcoro's (installed by the create)
        coro_resume(co, nullptr, nullptr);
    });
    ck_assert_msg(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 3,
                  "status %#x, stderr: %s", o.status, o.err.c_str());
    ck_assert_str_eq(o.err.c_str(), "my handler\n");
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

int main()
{
    Suite *s = suite_create("cxx");
    TCase *tc = tcase_create("exceptions");
    tcase_add_test(tc, caught_exception_stays_in_its_coroutine);
    tcase_add_test(tc, resumer_keeps_its_own_exception);
    tcase_add_test(tc, uncaught_exceptions_counted_per_coroutine);
    tcase_add_test(tc, coroutines_in_handlers_take_turns);
    tcase_add_test(tc, exception_ptr_carries_exception_to_resumer);
    suite_add_tcase(s, tc);
    tc = tcase_create("terminate");
    tcase_add_test(tc, escaping_exception_names_its_coroutine);
    tcase_add_test(tc, escaping_exception_names_the_innermost_coroutine);
    tcase_add_test(tc, caught_exception_prints_nothing);
    tcase_add_test(tc, terminate_outside_coroutines_just_chains);
    tcase_add_test(tc, handler_set_later_replaces_ours);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
