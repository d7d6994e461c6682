// Check suite of the C++ side: each coroutine has its own exception
// state (the exceptions being handled and the count in flight), as a
// thread does, because every switch saves and restores the C++ runtime's
// per-thread state (lib/cxx.h).
#include <check.h>
#include <coro.h>

#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

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

int main()
{
    Suite *s = suite_create("cxx");
    TCase *tc = tcase_create("exceptions");
    tcase_add_test(tc, caught_exception_stays_in_its_coroutine);
    tcase_add_test(tc, resumer_keeps_its_own_exception);
    tcase_add_test(tc, uncaught_exceptions_counted_per_coroutine);
    tcase_add_test(tc, coroutines_in_handlers_take_turns);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
