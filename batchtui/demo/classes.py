"""Demo batch classes: the USMF batch work of the Contoso demo data, in a few seconds.

Each class stands for a batch job that operators of the ERP know (sales order
invoicing, master planning, inventory close...). It works in steps spread over
its `seconds` parameter, writes the lines the real job's infolog would show,
reports progress after every step and stops at once when canceled.

The figures are made up but consistent: they come from a random generator
seeded with the job, run, task and attempt, so every run reads differently.
The demo loader writes weeks of history from the same `plan` the classes
follow, so a run in the history reads like a run watched live.

Nothing here imports Textual; only BatchHistoryCleanup touches the database
(through the job service), when it runs.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import ClassVar

from batchtui.classes import BatchClass, BatchClassError, Param, TaskCanceled, TaskContext, register_class

__all__ = [
    "Plan",
    "DemoWork",
    "SalesInvoicePosting",
    "MasterPlanning",
    "InventoryRecalculation",
    "InventoryClose",
    "SubledgerTransfer",
    "WorkflowMessageProcessing",
    "BatchHistoryCleanup",
    "ReleaseToWarehouse",
    "CustomerAgingSnapshot",
    "ForeignCurrencyRevaluation",
    "EmailDistributor",
    "SalesTaxSettlement",
    "DEMO_CLASSES",
    "register",
]

# -- the Contoso master data the logs talk about --------------------------------

CUSTOMERS = [
    ("US-001", "Contoso Retail San Diego", "30"),
    ("US-002", "Contoso Retail Los Angeles", "30"),
    ("US-003", "Forest Wholesales", "10"),
    ("US-004", "Cave Wholesales", "10"),
    ("US-005", "Contoso Retail Seattle", "30"),
    ("US-007", "Desert Wholesales", "10"),
    ("US-008", "Sparrow Retail", "30"),
    ("US-009", "Owl Wholesales", "10"),
    ("US-010", "Sunset Wholesales", "10"),
    ("US-011", "Grebe Wholesales", "20"),
    ("US-012", "Contoso Retail Portland", "30"),
    ("US-015", "Fourth Coffee", "20"),
    ("US-020", "Lamna Healthcare Company", "20"),
    ("US-027", "Birch Company", "20"),
    ("US-104", "Contoso Retail USA (intercompany)", "80"),
]
CUSTOMER_GROUPS = {"10": "Wholesale customers", "20": "Major customers", "30": "Retail customers",
                   "80": "Intercompany customers", "90": "Other customers"}
ITEMS = [("1000", "Surface Pro 128 GB"), ("1001", "Surface Pro 256 GB"), ("D0001", "MidRangeSpeaker"),
         ("D0003", "StandardSpeaker"), ("D0004", "HighEndSpeaker"), ("T0001", "SpeakerCable"),
         ("M0001", "Chassis"), ("M0004", "Speaker cone"), ("P0111", "Car audio system")]
WORKERS = ["April Meyer", "Benjamin Martin", "Charlie Carson", "Julia Funderburk", "Sara Thomas",
           "Tony Krijnen", "Alicia Thomber", "Ed Meadows"]
SITES = ["1", "2", "3", "5"]
CURRENCY = {"USMF": "USD", "USRT": "USD", "USSI": "USD", "DEMF": "EUR", "FRRT": "EUR", "GBSI": "GBP",
            "JPMF": "JPY", "MXMF": "MXN", "BRMF": "BRL", "CNMF": "CNY", "INMF": "INR"}
SOURCE_DOCUMENTS = ["Customer invoice", "Vendor invoice", "Product receipt", "Packing slip",
                    "Customer payment", "Vendor payment", "Inventory adjustment", "Free text invoice"]
NEGATIVE_ITEMS = ("1000", "1001", "D0001")


def plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def count(n: int, word: str) -> str:
    """ "1 invoice", "3 invoices", "2 currencies"."""
    return f"{n:,} {word if n == 1 else plural(word)}"


def money(amount: float, currency: str = "USD") -> str:
    return f"{amount:,.2f} {currency}"


def _currency(company: str) -> str:
    return CURRENCY.get(company, "USD")


# -- the base: work in steps ------------------------------------------------------


@dataclass
class Plan:
    """What one attempt does, step by step; `run` and the demo history both read it.

    With `error`, the attempt fails with that message before step `fail_at`
    (after the steps before it were written to the log).
    """

    header: str
    lines: list[str]
    summary: str
    unit: str = "step"
    error: str | None = None
    fail_at: int = 0


def _seconds(default: float) -> Param:
    return Param("seconds", "number", default, "how long the demo work takes, in seconds", minimum=0)


class DemoWork(BatchClass):
    """Base of the demo classes: a plan of log lines, spread over `seconds`."""

    name = "DemoWork"
    #: How long a run took on the ERP's batch servers, for the demo history (seconds).
    history_seconds: ClassVar[tuple[float, float]] = (20.0, 90.0)

    @classmethod
    def plan(cls, rng: random.Random, params: dict, *, company: str, attempt: int, when: datetime) -> Plan:
        raise NotImplementedError

    @classmethod
    def sample_error(cls, rng: random.Random, params: dict, *, company: str, when: datetime) -> str:
        """A realistic failure of this work, for the demo history."""
        return f"{cls.name} failed: the database connection was reset (transient); retry the task"

    @classmethod
    def failed_plan(cls, rng: random.Random, params: dict, *, company: str, attempt: int, when: datetime) -> Plan:
        """The plan of an attempt that fails (for the demo history): part of the work, then the error."""
        plan = cls.plan(rng, params, company=company, attempt=attempt, when=when)
        if plan.error is None:
            plan.error = cls.sample_error(rng, params, company=company, when=when)
            plan.fail_at = rng.randint(0, len(plan.lines))
        return plan

    @staticmethod
    def rng_for(ctx: TaskContext) -> random.Random:
        return random.Random(f"{ctx.job_id}/{ctx.run_id}/{ctx.task_id}/{ctx.attempt}")

    def run(self, ctx: TaskContext) -> None:
        plan = self.plan(self.rng_for(ctx), ctx.params, company=ctx.company, attempt=ctx.attempt,
                         when=datetime.now())
        seconds = float(ctx.params.get("seconds", 0) or 0)
        total = len(plan.lines)
        pause = seconds / (total + 1)
        ctx.log(plan.header)
        ctx.progress(0.0, f"{plan.unit.capitalize()} 0 of {total}" if total else None)
        for i, line in enumerate(plan.lines):
            self._pause(ctx, pause, i, total, plan.unit)
            if plan.error is not None and i == plan.fail_at:
                raise BatchClassError(plan.error)
            ctx.log(line)
            ctx.progress((i + 1) / total, f"{plan.unit.capitalize()} {i + 1} of {total}")
        if plan.error is not None:
            raise BatchClassError(plan.error)
        self._pause(ctx, pause, total, total, plan.unit)
        ctx.log(plan.summary)
        ctx.progress(1.0, "Done")

    @staticmethod
    def _pause(ctx: TaskContext, seconds: float, done: int, total: int, unit: str) -> None:
        if ctx.wait(seconds) or ctx.canceled:
            ctx.log(cancel_line(done, total, unit))
            raise TaskCanceled("canceled")

    @classmethod
    def transcript(cls, plan: Plan, outcome: str, stop_at: int | None = None) -> str:
        """The log of an attempt that followed `plan`: "ended", "error" or "canceled" (before step stop_at)."""
        lines = [plan.header]
        total = len(plan.lines)
        if outcome == "canceled":
            done = total if stop_at is None else min(stop_at, total)
            lines += plan.lines[:done]
            lines.append(cancel_line(done, total, plan.unit))
        elif outcome == "error":
            fail_at = min(plan.fail_at, total)
            lines += plan.lines[:fail_at]
            lines.append(f"Error: {plan.error or 'failed'}")
        else:
            lines += plan.lines
            lines.append(plan.summary)
        return "".join(line + "\n" for line in lines)


def cancel_line(done: int, total: int, unit: str) -> str:
    return (f"Canceled by the operator after {done} of {count(total, unit)}; "
            f"the work done so far is kept, the rest is left for the next run")


def _pick(rng: random.Random, items: list, k: int) -> list:
    if k <= len(items):
        return rng.sample(items, k)
    return [rng.choice(items) for _ in range(k)]


# -- the classes -------------------------------------------------------------------


class SalesInvoicePosting(DemoWork):
    """Sales order invoicing: posts the invoices of picked and packed sales orders."""

    params = (
        _seconds(4),
        Param("orders", "integer", 6, "how many sales orders to invoice", minimum=0),
        Param("customer_group", "text", "", "only customers of this group (10, 20, 30, 80); blank: all"),
        Param("hold_customer", "text", "",
              "a customer account on credit hold: invoicing stops at its order (try US-027)"),
    )
    history_seconds = (40.0, 180.0)

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        group = str(params.get("customer_group", "") or "").strip()
        pool = [c for c in CUSTOMERS if not group or c[2] == group] or CUSTOMERS
        number = int(params.get("orders", 6))
        customers = _pick(rng, pool, number)
        hold = str(params.get("hold_customer", "") or "").strip()
        fail_at, error = 0, None
        if hold and number:
            fail_at = min(2, number - 1)
            name = next((c[1] for c in CUSTOMERS if c[0] == hold), "customer")
            customers[fail_at] = (hold, name, "20")
        cur = _currency(company)
        first = rng.randint(1000, 90000)
        lines, total = [], 0.0
        for i, (account, name, _) in enumerate(customers):
            order = f"{rng.randint(1200, 9800):06d}"
            amount = round(rng.uniform(150, 25000), 2)
            if hold and i == fail_at:
                limit = rng.choice([25000, 50000, 100000])
                error = (f"Invoice for sales order {order} was not posted: customer {account} ({name}) is on "
                         f"credit hold, credit limit {money(limit, cur)} exceeded by "
                         f"{money(amount, cur)}. Release the hold (Accounts receivable > Customers > Credit "
                         "and collections) and set the job back to Waiting.")
            total += amount
            lines.append(f"Posted invoice CIV-{first + i:06d} for sales order {order}, customer {account} "
                         f"({name}): {money(amount, cur)}")
        header = (f"Sales order invoicing for {company}: {count(number, 'sales order')} picked and packed"
                  f"{f' (customer group {group})' if group else ''}; posting with quantity 'Picked'")
        summary = (f"Sales order invoicing done: {count(number, 'invoice')} posted, total {money(total, cur)}"
                   if number else "No sales orders are ready for invoicing")
        return Plan(header, lines, summary, "invoice", error, fail_at)

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        account, name, _ = rng.choice([c for c in CUSTOMERS if c[2] in ("10", "20")])
        if rng.random() < 0.7:
            return (f"Invoice for sales order {rng.randint(1200, 9800):06d} was not posted: customer {account} "
                    f"({name}) is on credit hold, credit limit {money(50000, _currency(company))} exceeded. "
                    "Release the hold and set the job back to Waiting.")
        return (f"Sales order {rng.randint(1200, 9800):06d} was changed by {rng.choice(WORKERS)} while it was "
                "being invoiced (update conflict on SalesTable); nothing was posted for that order, retry")


class MasterPlanning(DemoWork):
    """Master planning (ReqCalcScheduleSystem): runs coverage, explosion and scheduling for a plan."""

    params = (
        _seconds(6),
        Param("plan", "text", "DynPlan", "the master plan: DynPlan (dynamic) or StaticPlan"),
        Param("helper_threads", "integer", 4, "helper threads of the planning run", minimum=1),
        Param("firming", "boolean", False, "only firm planned orders (auto-firming), no new explosion"),
    )
    history_seconds = (1200.0, 2700.0)

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        plan = params.get("plan") or "DynPlan"
        helpers = int(params.get("helper_threads", 4))
        items = rng.randint(1700, 2600)
        if params.get("firming"):
            purchase, production = rng.randint(20, 80), rng.randint(5, 30)
            po = rng.randint(300, 900)
            lines = [
                f"Firming time fence 7 days: {purchase + production} planned orders of {plan} are due for firming",
                f"Firmed {purchase} planned purchase orders into purchase orders "
                f"{f'PO-{po:08d}'}..{f'PO-{po + purchase - 1:08d}'}",
                f"Firmed {production} planned production orders (status Created)",
                "Marked the firmed planned orders as processed in the action messages",
            ]
            return Plan(f"Auto-firming of master plan {plan} for {company}", lines,
                        f"Firming done: {purchase + production} planned orders firmed", "phase")
        planned, explode = rng.randint(1500, 2200), rng.randint(5000, 7000)
        delayed, messages = rng.randint(5, 40), rng.randint(90, 220)
        lines = [
            f"Update: {items:,} items marked for planning (net change since the last run)",
            f"Coverage: {rng.randint(2200, 2600):,} requirements covered, {planned:,} planned orders proposed",
            f"Explosion: {explode:,} BOM lines exploded over {rng.randint(4, 8)} levels",
            f"Scheduling: {rng.randint(300, 500)} planned production orders scheduled against capacity",
            f"Coverage time fence: {rng.randint(10, 40)} requirements beyond the 365-day fence skipped",
            f"Futures: {delayed} sales order lines delayed (futures date later than requested)",
            f"Action messages: {messages} (advance {messages // 3}, postpone {messages // 3}, "
            f"decrease {messages - 2 * (messages // 3)})",
        ]
        header = f"Master planning of {plan} for {company}: {helpers} helper threads, {items:,} items"
        summary = (f"Master plan {plan} is now the active plan: {planned:,} planned orders, "
                   f"{messages} action messages, {delayed} delays")
        return Plan(header, lines, summary, "phase")

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        item = rng.choice(ITEMS)[0]
        if rng.random() < 0.6:
            return (f"Deadlock on table ReqTrans while helper {rng.randint(1, 4)} updated requirements for item "
                    f"{item}; the plan was not updated (retry the task)")
        return (f"Item {item} has no coverage group and {company} has no default coverage group; set one "
                "under Master planning > Setup > Master planning parameters")


class InventoryRecalculation(DemoWork):
    """Inventory recalculation: adjusts issue costs; stops on negative physical inventory."""

    params = (
        _seconds(3),
        Param("warehouse", "text", "24", "the warehouse to recalculate"),
        Param("failures", "integer", 1,
              "attempts of each run that find negative physical inventory and fail (0: none)", minimum=0),
    )
    history_seconds = (120.0, 420.0)

    @staticmethod
    def negative_message(warehouse: str) -> str:
        items = ", ".join(NEGATIVE_ITEMS)
        return (f"InventoryRecalculation: {len(NEGATIVE_ITEMS)} items have negative physical inventory in "
                f"warehouse {warehouse} (item {items}); post the counting journals and retry")

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        warehouse = params.get("warehouse") or "24"
        failures = int(params.get("failures", 1))
        cur = _currency(company)
        items = rng.randint(120, 480)
        check = f"Checking physical inventory of {items} items in warehouse {warehouse}"
        if attempt <= failures:
            return Plan(f"Inventory recalculation for {company}, warehouse {warehouse}", [check],
                        "", "step", cls.negative_message(warehouse), 1)
        lines = [check]
        if attempt > 1:
            lines.append(f"Counting journal INV-{rng.randint(400, 900):06d} was posted meanwhile: items "
                         f"{', '.join(NEGATIVE_ITEMS)} are no longer negative in warehouse {warehouse}")
        moves = rng.randint(800, 4000)
        amount = round(rng.uniform(-4000, 6000), 2)
        lines += [
            f"Recalculated the cost of {moves:,} issue transactions from {when - timedelta(days=30):%Y-%m-%d}",
            f"Adjustment posted: {money(amount, cur)} to ledger account 140200 (Inventory)",
        ]
        return Plan(f"Inventory recalculation for {company}, warehouse {warehouse}", lines,
                    f"Inventory recalculation done for warehouse {warehouse}: {moves:,} transactions adjusted, "
                    f"net {money(amount, cur)}", "step")

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        return cls.negative_message(params.get("warehouse") or "24")

    @classmethod
    def failed_plan(cls, rng, params, *, company, attempt, when):
        return cls.plan(rng, {**params, "failures": attempt}, company=company, attempt=attempt, when=when)


class InventoryClose(DemoWork):
    """Inventory close: settles issues against receipts and posts the adjustments to the ledger."""

    params = (
        _seconds(5),
        Param("period_end", "text", "", "the closing date, YYYY-MM-DD; blank: the end of last month"),
        Param("cancel", "boolean", False, "cancel the last inventory close instead (reverse its settlements)"),
    )
    history_seconds = (300.0, 900.0)

    @staticmethod
    def closing_date(params: dict, when: datetime) -> str:
        text = str(params.get("period_end") or "").strip()
        if text:
            try:
                return date.fromisoformat(text).isoformat()
            except ValueError:
                raise BatchClassError(f"period_end {text!r} is not a date YYYY-MM-DD") from None
        return (when.date().replace(day=1) - timedelta(days=1)).isoformat()

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        closing = cls.closing_date(params, when)
        cur = _currency(company)
        voucher = f"INVCL-{rng.randint(100, 999):06d}"
        if params.get("cancel"):
            settled = rng.randint(800, 3000)
            lines = [
                f"Reversing the inventory close of {closing} (voucher {voucher})",
                f"Reversed {settled:,} settlements of issues against receipts",
                "Reversed the adjustments posted to ledger accounts 140200 and 510300",
            ]
            return Plan(f"Cancel inventory close for {company}", lines,
                        f"Inventory close of {closing} canceled: the period is open for inventory again", "step")
        lines = [f"Closing date {closing}: {len(SITES)} sites, {rng.randint(300, 900)} items with open transactions"]
        for site in SITES:
            lines.append(f"Settled {rng.randint(200, 1500):,} issue transactions against receipts in site {site} "
                         "(weighted average)")
        amount = round(rng.uniform(-2500, 2500), 2)
        lines.append(f"Adjustment {voucher} posted: {money(amount, cur)} to ledger account 140200 (Inventory), "
                     "offset 510300 (Inventory variance)")
        return Plan(f"Inventory close for {company} up to {closing}", lines,
                    f"Inventory closed up to {closing}; net adjustment {money(amount, cur)}", "step")

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        return (f"Inventory close stopped: {rng.randint(2, 6)} issue transactions of item "
                f"{rng.choice(ITEMS)[0]} in warehouse 24 have no financial cost; post the vendor invoices for "
                f"purchase order PO-{rng.randint(300, 900):08d} first")


class SubledgerTransfer(DemoWork):
    """Transfers subledger journal entries to the general ledger."""

    params = (
        _seconds(2),
        Param("source", "text", "", "only this source document type (e.g. Customer invoice); blank: all"),
    )
    history_seconds = (3.0, 25.0)

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        only = str(params.get("source") or "").strip()
        kinds = [only] if only else rng.sample(SOURCE_DOCUMENTS, rng.randint(1, 4))
        cur = _currency(company)
        journal = rng.randint(4000, 9000)
        lines, vouchers, total = [], 0, 0.0
        for i, kind in enumerate(kinds):
            n = rng.randint(1, 60)
            amount = round(rng.uniform(500, 90000), 2)
            vouchers += n
            total += amount
            lines.append(f"Transferred {count(n, 'voucher')} of '{kind}' to general ledger journal "
                         f"GNJL{journal + i:06d}: debit {money(amount, cur)} = credit {money(amount, cur)}")
        return Plan(f"Subledger transfer for {company}: entries of {count(len(kinds), 'source document type')}",
                    lines, f"Subledger transfer done: {count(vouchers, 'voucher')}, {money(total, cur)}", "journal")

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        return (f"Voucher CIV-{rng.randint(1000, 9000):06d} cannot be transferred: ledger period "
                f"'{when:%B %Y}' is on hold for {company} (open it under General ledger > Calendars > "
                "Ledger calendars); the other vouchers wait for the next run")


class WorkflowMessageProcessing(DemoWork):
    """Workflow message processing: works through the workflow message queue."""

    params = (
        _seconds(2),
        Param("messages", "integer", 5, "how many queued workflow messages to process", minimum=0),
    )
    history_seconds = (1.0, 8.0)

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        number = int(params.get("messages", 5))
        lines = []
        for _ in range(number):
            a, b = rng.sample(WORKERS, 2)
            n = rng.randint(100, 999)
            lines.append(rng.choice([
                f"Purchase requisition review: PR-{n:06d} submitted by {a}; step 'Approve' assigned to {b}",
                f"Vendor invoice approval: APINV-{n:06d} approved by {a}; workflow completed",
                f"Expense report approval: EXP-{n:06d} escalated to {b} (due date passed)",
                f"Purchase order approval: PO-{n:08d} approved automatically (below {money(5000)})",
                f"General journal approval: GNJL{n:06d} delegated from {a} to {b}",
            ]))
        return Plan(f"Workflow message queue of {company}: {count(number, 'message')} waiting", lines,
                    f"Processed {count(number, 'workflow message')}; the queue is empty", "message")

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        return (f"Work item for PR-{rng.randint(100, 999):06d} could not be assigned: worker "
                f"'{rng.choice(WORKERS)}' has no position in department 'Purchasing' (check the workflow's "
                "participant assignment); the message stays in the queue")


class BatchHistoryCleanup(DemoWork):
    """Batch job history clean-up: deletes the runs that ended more than N days ago."""

    params = (
        Param("older_than_days", "number", 30, "delete runs that ended more than this many days ago", minimum=0),
        Param("status", "text", "", "only runs that ended so: ended, error, canceled (comma separated); blank: all"),
        Param("company", "text", "", "only jobs of this company; blank: all"),
        _seconds(1),
    )
    history_seconds = (5.0, 40.0)

    @staticmethod
    def _filters(params: dict) -> tuple[list[str] | None, str | None, str]:
        statuses = [s.strip() for s in str(params.get("status") or "").split(",") if s.strip()] or None
        company = str(params.get("company") or "").strip() or None
        words = []
        if statuses:
            words.append("status " + ", ".join(statuses))
        if company:
            words.append(f"company {company}")
        return statuses, company, (" (" + "; ".join(words) + ")") if words else ""

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        days = params.get("older_than_days", 30)
        _, _, filters = cls._filters(params)
        deleted = rng.randint(40, 900)
        return Plan(f"Batch job history clean-up: runs that ended more than {days:g} days ago{filters}",
                    [f"Deleted {count(deleted, 'run')} that ended before {when - timedelta(days=days):%Y-%m-%d}, with "
                     "their tasks' attempts and logs"],
                    f"Batch job history clean-up done: {count(deleted, 'run')} deleted", "step")

    def run(self, ctx: TaskContext) -> None:
        from batchtui import models
        from batchtui.actor import Actor
        from batchtui.errors import UserError
        from batchtui.history import cleanup_history

        days = ctx.params.get("older_than_days", 30)
        statuses, company, filters = self._filters(ctx.params)
        pause = float(ctx.params.get("seconds", 0) or 0) / 2
        ctx.log(f"Batch job history clean-up: runs that ended more than {days:g} days ago{filters}, "
                f"as {ctx.run_by}")
        ctx.progress(0.0, "Finding old runs")
        self._pause(ctx, pause, 0, 1, "step")
        # A worker thread has no connection of its own yet: open one for the clean-up.
        connection = models.database.connection_context() if models.database.is_closed() else nullcontext()
        try:
            with connection:
                deleted = cleanup_history(older_than_days=days, statuses=statuses, company=company,
                                          actor=Actor.current(ctx.run_by))
        except UserError as exc:
            raise BatchClassError(str(exc)) from None
        ctx.log(f"Deleted {count(deleted, 'run')}, with their tasks' attempts and logs")
        ctx.progress(1.0, "Done")
        self._pause(ctx, pause, 1, 1, "step")
        ctx.log(f"Batch job history clean-up done: {count(deleted, 'run')} deleted")


class ReleaseToWarehouse(DemoWork):
    """Release to warehouse: creates shipments and loads for reserved sales order lines."""

    params = (
        _seconds(3),
        Param("orders", "integer", 5, "how many sales orders to release", minimum=0),
        Param("warehouse", "text", "24", "the warehouse to release to"),
    )
    history_seconds = (10.0, 60.0)

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        number = int(params.get("orders", 5))
        warehouse = params.get("warehouse") or "24"
        first = rng.randint(10000, 90000)
        lines = []
        for i, (account, name, _) in enumerate(_pick(rng, CUSTOMERS[:13], number)):
            lines.append(f"Sales order {rng.randint(1200, 9800):06d} ({account} {name}): "
                         f"{count(rng.randint(1, 9), 'line')} released, shipment USMF-{first + i:08d}")
        waves = max(1, number // 4) if number else 0
        return Plan(f"Release to warehouse {warehouse}: {count(number, 'sales order')} with reserved lines", lines,
                    f"Released {count(number, 'sales order')}: {count(number, 'shipment')}, "
                    f"{count(waves, 'wave')} in warehouse {warehouse}",
                    "order")

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        return (f"Sales order {rng.randint(1200, 9800):06d} line 2: item {rng.choice(ITEMS)[0]} has no "
                f"location directive for picking in warehouse {params.get('warehouse') or '24'}; the order was "
                "not released (add a location directive for work order type 'Sales orders')")


class CustomerAgingSnapshot(DemoWork):
    """Customer aging snapshot: balances by aging bucket, for collections."""

    params = (
        _seconds(3),
        Param("aging_period", "text", "90 days", "the aging period definition"),
    )
    history_seconds = (60.0, 240.0)

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        period = params.get("aging_period") or "90 days"
        cur = _currency(company)
        lines, customers, overdue = [], 0, 0
        for group, name in CUSTOMER_GROUPS.items():
            n, late = rng.randint(4, 60), rng.randint(0, 9)
            customers += n
            overdue += late
            lines.append(f"Customer group {group} ({name}): {n} customers, balance "
                         f"{money(rng.uniform(20000, 900000), cur)}, {late} past due more than 30 days")
        return Plan(f"Customer aging snapshot for {company} with aging period definition '{period}'", lines,
                    f"Aging snapshot of {when:%Y-%m-%d} saved: {count(customers, 'customer')}, {overdue} past due",
                    "customer group")


class ForeignCurrencyRevaluation(DemoWork):
    """Foreign currency revaluation: revalues open transactions in other currencies at the month-end rate."""

    params = (
        _seconds(3),
        Param("currencies", "text", "EUR,GBP,CAD,MXN", "the currencies to revalue, comma separated"),
        Param("rate_type", "text", "Default", "the exchange rate type"),
    )
    history_seconds = (30.0, 120.0)

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        currencies = [c.strip().upper() for c in str(params.get("currencies") or "EUR").split(",") if c.strip()]
        rates = {"EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "MXN": 0.058, "JPY": 0.0067}
        cur = _currency(company)
        lines, net = [], 0.0
        for c in currencies:
            amount = round(rng.uniform(-8000, 8000), 2)
            net += amount
            lines.append(f"{c}: rate {rates.get(c, 1.0) * rng.uniform(0.98, 1.02):.4f} on {when:%Y-%m-%d}, "
                         f"{rng.randint(5, 200)} open transactions, unrealized "
                         f"{'gain' if amount >= 0 else 'loss'} {money(abs(amount), cur)}")
        return Plan(f"Foreign currency revaluation for {company}, exchange rate type "
                    f"'{params.get('rate_type') or 'Default'}'", lines,
                    f"Revaluation posted as voucher FXR-{rng.randint(100, 999):06d}: net unrealized "
                    f"{money(net, cur)}", "currency")

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        return (f"No exchange rate from MXN to USD on {when:%Y-%m-%d} for exchange rate type 'Default'; import "
                "the month-end rates and retry")


class EmailDistributor(DemoWork):
    """E-mail distributor (SysEmailDistributor): sends the queued e-mails."""

    params = (
        _seconds(2),
        Param("messages", "integer", 3, "how many queued e-mails to send", minimum=0),
    )
    history_seconds = (2.0, 15.0)

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        number = int(params.get("messages", 3))
        lines = []
        for _ in range(number):
            account, name, _ = rng.choice(CUSTOMERS)
            subject = rng.choice([f"Sales order confirmation {rng.randint(1200, 9800):06d}",
                                  f"Customer account statement {account}",
                                  f"Invoice CIV-{rng.randint(1000, 90000):06d}",
                                  "Payment advice"])
            lines.append(f"Sent '{subject}' to {name} ({rng.randint(20, 400)} KB)")
        return Plan(f"E-mail distributor: {count(number, 'e-mail')} in the outgoing queue (smtp.contoso.com)", lines,
                    f"Sent {count(number, 'e-mail')}, none failed", "e-mail")

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        return (f"SMTP server smtp.contoso.com:587 did not answer (timed out after 60 s); "
                f"{rng.randint(2, 9)} e-mails stay in the queue for the next run")


class SalesTaxSettlement(DemoWork):
    """Settle and post sales tax for a settlement period."""

    params = (
        _seconds(3),
        Param("settlement_period", "text", "USA-MONTHLY", "the sales tax settlement period"),
    )
    history_seconds = (20.0, 90.0)

    @classmethod
    def plan(cls, rng, params, *, company, attempt, when):
        period = params.get("settlement_period") or "USA-MONTHLY"
        cur = _currency(company)
        lines, total = [], 0.0
        for authority in ("CA-STATE (California)", "TX-STATE (Texas)", "WA-STATE (Washington)",
                          "NY-STATE (New York)"):
            amount = round(rng.uniform(2000, 60000), 2)
            total += amount
            lines.append(f"Sales tax authority {authority}: {rng.randint(40, 900)} transactions, tax payable "
                         f"{money(amount, cur)}")
        return Plan(f"Settle and post sales tax for {company}, settlement period {period}", lines,
                    f"Sales tax payable {money(total, cur)} posted to ledger account 222200; invoices to the tax "
                    "authorities created", "authority")

    @classmethod
    def sample_error(cls, rng, params, *, company, when):
        return (f"Settlement period '{params.get('settlement_period') or 'USA-MONTHLY'}' has an open interval "
                "before this one; settle it first")


DEMO_CLASSES: dict[str, type[DemoWork]] = {
    cls.name: cls for cls in (
        SalesInvoicePosting, MasterPlanning, InventoryRecalculation, InventoryClose, SubledgerTransfer,
        WorkflowMessageProcessing, BatchHistoryCleanup, ReleaseToWarehouse, CustomerAgingSnapshot,
        ForeignCurrencyRevaluation, EmailDistributor, SalesTaxSettlement,
    )
}



def register() -> None:
    """Make the demo classes known by their short names in this process.

    The package's entry points (group "batchtui.classes") make them known in
    every process; this covers a process that loads the demo before they are
    installed (and is harmless after).
    """
    for cls in DEMO_CLASSES.values():
        register_class(cls)


register()
