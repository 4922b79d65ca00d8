//! The simulated call center `simulate` runs against the real engine, in process: an inbox that
//! receives the engine's signed webhooks (`dispatch::Sink`), a robot dialler and an SMS/e-mail
//! gateway that work what they were sent within the dialler's capacity, agents who lease from
//! the human queues within their shifts, and a time-ordered queue of what each of them does
//! next. Every contact asks the simulated world (`sim::World`) what happened and reports it
//! through the engine's own use cases (`record_attempt`, `lease_next`, `heartbeat`, `complete`),
//! at the instant of the call. It never writes to the store itself and never decides whether a
//! contact may happen: the engine's gate decided when it sent or leased the task.

use super::tally::{AccountIndex, Tally};
use crate::dispatch::{
    Dispatcher, Envelope, SignedMessage, SigningSecret, Sink, SinkAnswer, TASK_CANCELLED, TASK_READY, TaskCancelledV1,
    TaskReadyV1, verify,
};
use crate::domain::{Channel, Outcome, QueueCapacity};
use crate::ops::work::{self, Actor, AttemptReport, PromiseTerms, Rules, WorkError};
use crate::policy::Policy;
use crate::sim::{Capacity, ContactMade, Load, World};
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, Timelike, Utc};
use sea_orm::DatabaseConnection;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::sync::Mutex;

/// What the inbox received, in arrival order.
#[derive(Debug)]
enum Received {
    /// A `task.ready` and the engine's instant of sending.
    Ready(Box<TaskReadyV1>),
    /// A `task.cancelled`: the task id.
    Cancelled(String),
}

/// The in-process receiver of the robot, SMS and e-mail endpoints. It checks each signature as
/// any receiver should and keeps what it got for the dialler and the gateway.
pub(super) struct Inbox {
    secret: SigningSecret,
    received: Mutex<Vec<Received>>,
    /// Messages refused (bad signature or body): should stay 0.
    rejected: Mutex<u64>,
}

impl Inbox {
    /// An inbox verifying with `secret`.
    pub fn new(secret: SigningSecret) -> Inbox {
        Inbox { secret, received: Mutex::default(), rejected: Mutex::new(0) }
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Messages refused so far.
    pub fn rejected(&self) -> u64 {
        *self.rejected.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reject(&self, status: u16) -> SinkAnswer {
        *self.rejected.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
        SinkAnswer::Failed { status, retry_after: None }
    }
}

impl Sink for Inbox {
    fn receive(&self, message: &SignedMessage<'_>) -> SinkAnswer {
        let timestamp = message.timestamp.to_string();
        let checked = verify(
            &self.secret,
            Some(message.webhook_id),
            Some(&timestamp),
            Some(&message.signature),
            message.body.as_bytes(),
            message.timestamp,
            0,
        );
        if checked.is_err() {
            return self.reject(401);
        }
        let kind = serde_json::from_str::<Envelope<serde_json::Value>>(message.body).map(|envelope| envelope.kind);
        let received = match kind.as_deref() {
            Ok(TASK_READY) => serde_json::from_str::<Envelope<TaskReadyV1>>(message.body)
                .map(|envelope| Received::Ready(Box::new(envelope.data))),
            Ok(TASK_CANCELLED) => serde_json::from_str::<Envelope<TaskCancelledV1>>(message.body)
                .map(|envelope| Received::Cancelled(envelope.data.task_id)),
            _ => return self.reject(400),
        };
        match received {
            Ok(received) => {
                self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(received);
                SinkAnswer::Delivered
            }
            Err(_) => self.reject(400),
        }
    }
}

/// One simulated human queue: its capacity and its agents.
#[derive(Debug, Clone)]
pub(super) struct QueueSim {
    /// The queue's name.
    pub name: String,
    /// Who works it, by hour.
    pub capacity: QueueCapacity,
    /// Whether the capacity is the simulator's default (the queue has no `[queues.<name>]`).
    pub default: bool,
}

/// An agent's hold on a task.
#[derive(Debug, Clone)]
struct Held {
    task_id: i64,
    account_id: String,
    strategy: String,
    calls_left: u32,
    expires_at: DateTime<Utc>,
    /// The phones the lease lists, each with the calls it may still take (`u32::MAX`: no cap).
    phones: Vec<(String, u32)>,
    /// A callback the borrower asked for (exempt from Regulation F's 7-in-7 and cool-down).
    exempt: bool,
}

/// One simulated agent.
#[derive(Debug, Clone)]
struct Agent {
    id: String,
    queue: usize,
    /// Its position in the queue's roster: on duty in an hour when below that hour's agents.
    index: u32,
    lease: Option<Held>,
    /// Whether an event of this agent is queued (it is working or about to ask for work).
    scheduled: bool,
    /// When the current call ends.
    free_at: DateTime<Utc>,
}

#[derive(Debug)]
enum What {
    /// The dialler or the gateway works a task it was sent.
    Message(Box<TaskReadyV1>),
    /// An agent asks its queue for work.
    AgentFree(usize),
    /// An agent places the next call of its lease.
    AgentCall(usize),
    /// An agent completes its lease.
    AgentDone(usize),
}

#[derive(Debug)]
struct Event {
    at: DateTime<Utc>,
    seq: u64,
    what: What,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed, so that the max-heap pops the earliest event (ties: the first queued).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Wall time spent in each engine operation (for `ARREARS_SIM_PROFILE`; never in a report).
#[derive(Debug, Default)]
pub(super) struct Profile {
    pub spent: BTreeMap<&'static str, (std::time::Duration, u64)>,
}

impl Profile {
    /// Adds one call of `operation` that started at `since`.
    pub fn add(&mut self, operation: &'static str, since: std::time::Instant) {
        let entry = self.spent.entry(operation).or_default();
        entry.0 += since.elapsed();
        entry.1 += 1;
    }
}

/// What the engine refused of the center's reports and requests, by operation and reason.
pub(super) type Refusals = BTreeMap<String, u64>;

/// What the engine needs for every report: the store, the rules in force, the outbox worker.
pub(super) struct Engine<'a> {
    pub db: &'a DatabaseConnection,
    pub strategies: &'a StrategySet,
    pub fallback: &'a Policy,
    pub rules: Rules<'a>,
    pub dispatcher: &'a Dispatcher,
    pub lease_ttl: Duration,
}

/// The simulated call center.
pub(super) struct Center {
    world: World,
    inbox: std::sync::Arc<Inbox>,
    robot_calls_per_hour: u32,
    robot_spacing: Duration,
    next_robot_slot: DateTime<Utc>,
    load: Load,
    queues: Vec<QueueSim>,
    agents: Vec<Agent>,
    events: BinaryHeap<Event>,
    seq: u64,
    /// The end of the simulated period: agent time after it belongs to no simulated hour.
    end: DateTime<Utc>,
    cancelled: HashSet<String>,
    /// Every contact made, for the independent violation check, with its strategy's index.
    pub contacts: Vec<(ContactMade, Option<usize>)>,
    /// What the engine refused.
    pub refusals: Refusals,
    /// Robot tasks the dialler could not reach before their window closed (capacity).
    pub robot_unreached: u64,
    /// Tasks cancelled by the engine before the dialler or gateway got to them.
    pub skipped_cancelled: u64,
    /// Agent minutes by queue inside the agents' shifts.
    pub agent_minutes: Vec<f64>,
    /// Agent minutes by queue after a shift ended (a call that ran past it).
    pub overtime_minutes: Vec<f64>,
    /// Leases by queue.
    pub leases: Vec<u64>,
    /// The instant a queue last had nothing to lease: the agents asking at that same instant
    /// after the first would get nothing either, so they do not ask.
    empty_at: Vec<Option<DateTime<Utc>>>,
    /// Per-account counters.
    pub tally: Tally,
    /// Where the wall time went.
    pub profile: Profile,
    index: AccountIndex,
}

fn hour_start(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_minute(0).and_then(|at| at.with_second(0)).and_then(|at| at.with_nanosecond(0)).unwrap_or(at)
}

impl Center {
    /// A center over `world`, receiving in `inbox`, with the dialler's capacity and the queues.
    pub fn new(
        world: World,
        inbox: std::sync::Arc<Inbox>,
        robot_calls_per_hour: u32,
        queues: Vec<QueueSim>,
        index: AccountIndex,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Center {
        let mut agents = Vec::new();
        for (queue, sim) in queues.iter().enumerate() {
            let roster = sim.capacity.agents_by_hour.iter().copied().max().unwrap_or(0);
            for n in 0..roster {
                agents.push(Agent {
                    id: format!("sim-{}-{:03}", sim.name, n + 1),
                    queue,
                    index: n,
                    lease: None,
                    scheduled: false,
                    free_at: start,
                });
            }
        }
        let millis = 3_600_000 / i64::from(robot_calls_per_hour.max(1));
        let tally = Tally::new(index.len());
        Center {
            world,
            inbox,
            robot_calls_per_hour,
            robot_spacing: Duration::milliseconds(millis.max(1)),
            next_robot_slot: start,
            load: Load::new(),
            agent_minutes: vec![0.0; queues.len()],
            overtime_minutes: vec![0.0; queues.len()],
            leases: vec![0; queues.len()],
            empty_at: vec![None; queues.len()],
            queues,
            agents,
            events: BinaryHeap::new(),
            seq: 0,
            end,
            cancelled: HashSet::new(),
            contacts: Vec::new(),
            refusals: Refusals::new(),
            robot_unreached: 0,
            skipped_cancelled: 0,
            tally,
            profile: Profile::default(),
            index,
        }
    }

    /// The world, read-only (the oracle's model).
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The world, for the day's payments.
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// The simulated queues.
    pub fn queues(&self) -> &[QueueSim] {
        &self.queues
    }

    fn push(&mut self, at: DateTime<Utc>, what: What) {
        self.seq += 1;
        self.events.push(Event { at, seq: self.seq, what });
    }

    fn refused(&mut self, operation: &str, error: &WorkError) {
        let kind = match error {
            WorkError::NotFound(_) => "not_found".to_string(),
            WorkError::NotYourLease(_) => "not_your_lease".to_string(),
            WorkError::Conflict(_) => "conflict".to_string(),
            WorkError::Invalid { field, .. } => format!("invalid:{field}"),
            WorkError::Store(_) => "store".to_string(),
        };
        tracing::debug!(operation, %error, "the engine refused a simulated report");
        *self.refusals.entry(format!("{operation}:{kind}")).or_default() += 1;
    }

    fn capacity_at(&self, at: DateTime<Utc>) -> Capacity {
        Capacity {
            robot_calls_per_hour: self.robot_calls_per_hour,
            agents: self.queues.iter().map(|queue| (queue.name.clone(), queue.capacity.agents_at(at))).collect(),
        }
    }

    fn on_duty(&self, agent: usize, at: DateTime<Utc>) -> bool {
        let agent = &self.agents[agent];
        agent.index < self.queues[agent.queue].capacity.agents_at(at)
    }

    /// Delivers every due webhook at `now` (the outbox worker running as often as it must) and
    /// hands what arrived to the dialler and the gateway.
    pub async fn flush_outbox(&mut self, engine: &Engine<'_>, now: DateTime<Utc>) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            let report = engine.dispatcher.deliver_due(engine.db, engine.strategies, engine.fallback, now).await?;
            if report.claimed < engine.dispatcher.batch {
                break;
            }
        }
        self.profile.add("deliver", started);
        for received in self.inbox.take() {
            match received {
                Received::Cancelled(task_id) => {
                    self.cancelled.insert(task_id);
                }
                Received::Ready(task) => self.schedule_message(task, now),
            }
        }
        Ok(())
    }

    /// The dialler places robot calls in the order it was sent them, one every
    /// `3600 / robot_calls_per_hour` seconds at most and never more than its capacity in a UTC
    /// hour; a call it cannot place before the task's window closes is not placed. Messages go
    /// out at once.
    fn schedule_message(&mut self, task: Box<TaskReadyV1>, now: DateTime<Utc>) {
        let not_before = task.not_before.to_utc();
        let not_after = task.not_after.to_utc();
        let earliest = now.max(not_before);
        if task.channel != Channel::Robot.code() {
            if earliest < not_after {
                self.push(earliest, What::Message(task));
            }
            return;
        }
        let mut at = earliest.max(self.next_robot_slot);
        loop {
            if at >= not_after {
                self.robot_unreached += 1;
                return;
            }
            let capacity = self.capacity_at(at);
            if self.load.take_robot(&capacity, at) {
                break;
            }
            at = hour_start(at) + Duration::hours(1);
        }
        self.next_robot_slot = at + self.robot_spacing;
        self.push(at, What::Message(task));
    }

    /// Agents on duty at `now` (the start of an hour) who are not working ask for work.
    pub fn start_hour(&mut self, now: DateTime<Utc>) {
        for agent in 0..self.agents.len() {
            if !self.agents[agent].scheduled && self.on_duty(agent, now) {
                self.agents[agent].scheduled = true;
                let at = now.max(self.agents[agent].free_at);
                self.push(at, What::AgentFree(agent));
            }
        }
    }

    /// A transfer arrived in `queue` at `at`: its idle agents on duty look for work then.
    pub fn ring(&mut self, queue: &str, at: DateTime<Utc>) {
        let Some(index) = self.queues.iter().position(|sim| sim.name == queue) else { return };
        self.empty_at[index] = None;
        for agent in 0..self.agents.len() {
            // Also an agent already scheduled for the hour's start: the transfer comes later.
            if self.agents[agent].queue == index && self.agents[agent].lease.is_none() && self.on_duty(agent, at) {
                self.agents[agent].scheduled = true;
                let when = at.max(self.agents[agent].free_at);
                self.push(when, What::AgentFree(agent));
            }
        }
    }

    /// Works every event before `until`, in time order.
    pub async fn run_until(&mut self, engine: &Engine<'_>, until: DateTime<Utc>) -> anyhow::Result<()> {
        while self.events.peek().is_some_and(|event| event.at < until) {
            let Some(event) = self.events.pop() else { break };
            match event.what {
                What::Message(task) => self.work_message(engine, *task, event.at).await?,
                What::AgentFree(agent) => self.agent_free(engine, agent, event.at).await?,
                What::AgentCall(agent) => self.agent_call(engine, agent, event.at).await?,
                What::AgentDone(agent) => self.agent_done(engine, agent, event.at).await?,
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn note_contact(
        &mut self,
        account: usize,
        channel: Channel,
        phone: Option<String>,
        at: DateTime<Utc>,
        outcome: Outcome,
        strategy: &str,
        exempt: bool,
    ) {
        let (borrower_id, zones) = self.index.party(account);
        let contact = ContactMade {
            account_id: self.index.id(account).to_string(),
            borrower_id: borrower_id.to_string(),
            zones: zones.to_vec(),
            channel,
            phone,
            at,
            outcome,
            exempt,
        };
        self.contacts.push((contact, self.index.strategy_index(strategy)));
    }

    /// Asks the world, then reports what happened.
    #[allow(clippy::too_many_arguments)]
    async fn report(
        &mut self,
        engine: &Engine<'_>,
        task_id: i64,
        actor: &Actor,
        account: usize,
        channel: Channel,
        phone: Option<String>,
        at: DateTime<Utc>,
        strategy: &str,
        exempt: bool,
    ) -> anyhow::Result<Option<(Outcome, Option<f64>, work::AttemptRecorded)>> {
        let account_id = self.index.id(account).to_string();
        let contact = self.world.contact(&account_id, channel, at)?;
        let promise = contact.promise.as_ref().map(|terms| PromiseTerms {
            // A promise of a fraction of a tiny balance rounds to nothing: the borrower promises it all.
            amount: if terms.amount > crate::domain::Money::ZERO {
                terms.amount
            } else {
                self.world.owed(&account_id).unwrap_or(terms.amount)
            },
            due_on: terms.due_on,
        });
        self.note_contact(account, channel, phone.clone(), at, contact.outcome, strategy, exempt);
        let report = AttemptReport {
            outcome: contact.outcome.code().to_string(),
            at: Some(at),
            phone,
            promise,
            callback_at: contact.callback_at,
            note: None,
            duration_seconds: match actor {
                Actor::Dialler => None,
                _ => contact.handling_minutes.map(|minutes| (minutes * 60.0).round().max(0.0) as u32),
            },
        };
        let operation = if matches!(actor, Actor::Dialler) { "dialler_report" } else { "agent_report" };
        let started = std::time::Instant::now();
        let recorded = work::record_attempt(engine.db, &engine.rules, task_id, actor, report, at).await;
        self.profile.add(operation, started);
        match recorded {
            Ok(recorded) => {
                self.tally.attempt(account, channel, contact.outcome);
                self.tasks_closed(task_id, &recorded.tasks_cancelled);
                if !recorded.tasks_cancelled.is_empty() || recorded.escalation.is_some() {
                    // The outbox worker sends the `task.cancelled` messages within seconds.
                    self.flush_outbox(engine, at).await?;
                }
                Ok(Some((contact.outcome, contact.handling_minutes, recorded)))
            }
            Err(WorkError::Store(error)) => Err(error.into()),
            Err(error) => {
                self.refused(operation, &error);
                Ok(None)
            }
        }
    }

    async fn work_message(&mut self, engine: &Engine<'_>, task: TaskReadyV1, at: DateTime<Utc>) -> anyhow::Result<()> {
        if self.cancelled.contains(&task.task_id) {
            self.skipped_cancelled += 1;
            return Ok(());
        }
        let (Ok(task_id), Ok(channel), Some(account)) =
            (task.task_id.parse::<i64>(), task.channel.parse::<Channel>(), self.index.of(&task.account_id))
        else {
            *self.refusals.entry("dialler:unreadable_task".into()).or_default() += 1;
            return Ok(());
        };
        self.report(engine, task_id, &Actor::Dialler, account, channel, task.to.clone(), at, &task.strategy, false)
            .await?;
        Ok(())
    }

    async fn agent_free(&mut self, engine: &Engine<'_>, agent: usize, at: DateTime<Utc>) -> anyhow::Result<()> {
        // A second wake-up (a transfer rang) while the agent works a lease: the lease goes on.
        if self.agents[agent].lease.is_some() {
            return Ok(());
        }
        if !self.on_duty(agent, at) {
            self.agents[agent].scheduled = false;
            return Ok(());
        }
        let queue = self.agents[agent].queue;
        if self.empty_at[queue] == Some(at) {
            self.agents[agent].scheduled = false;
            return Ok(());
        }
        let name = self.queues[queue].name.clone();
        let id = self.agents[agent].id.clone();
        let started = std::time::Instant::now();
        let leased = work::lease_next(engine.db, &engine.rules, &name, &id, at, engine.lease_ttl).await;
        self.profile.add("lease", started);
        match leased {
            Ok(Some(lease)) => {
                self.leases[queue] += 1;
                self.agents[agent].lease = Some(Held {
                    task_id: lease.task.id,
                    account_id: lease.task.account_id.clone(),
                    strategy: lease.task.strategy.clone(),
                    calls_left: lease.task.calls_allowed,
                    expires_at: lease.lease_expires_at,
                    phones: lease
                        .account
                        .phones
                        .iter()
                        .map(|phone| {
                            (phone.clone(), lease.account.phone_calls_left.get(phone).copied().unwrap_or(u32::MAX))
                        })
                        .collect(),
                    exempt: lease
                        .task
                        .context
                        .as_ref()
                        .is_some_and(|context| context["origin"] == "callback" || context["origin"] == "transfer"),
                });
                self.push(at, What::AgentCall(agent));
            }
            Ok(None) => {
                self.empty_at[queue] = Some(at);
                self.agents[agent].scheduled = false;
            }
            Err(WorkError::Store(error)) => return Err(error.into()),
            Err(error) => {
                self.refused("lease", &error);
                self.agents[agent].scheduled = false;
            }
        }
        Ok(())
    }

    /// Accounts the servicing system reported paid in full: the engine cancelled their tasks,
    /// and an agent holding one sees it close on their screen and takes the next.
    pub fn paid_in_full(&mut self, accounts: &[String]) {
        self.drop_leases(|held| accounts.contains(&held.account_id));
    }

    /// Tasks an outcome on `reported` cancelled (the borrower's other tasks after a promise or
    /// the day's last right-party call): an agent holding one sees it close and takes the next.
    fn tasks_closed(&mut self, reported: i64, cancelled: &[i64]) {
        self.drop_leases(|held| held.task_id != reported && cancelled.contains(&held.task_id));
    }

    /// Takes away every lease `closed` says the engine closed: its agent's next event frees it.
    fn drop_leases(&mut self, closed: impl Fn(&Held) -> bool) {
        for agent in &mut self.agents {
            if agent.lease.as_ref().is_some_and(&closed) {
                agent.lease = None;
            }
        }
    }

    /// Books a call's minutes hour by hour: inside the agent's shift as work, after it as
    /// overtime; none after the end of the simulated period (whose hours are not counted as
    /// available either).
    fn book(&mut self, agent: usize, start: DateTime<Utc>, minutes: f64) -> f64 {
        let queue = self.agents[agent].queue;
        let name = self.queues[queue].name.clone();
        let mut at = start;
        let mut left = minutes;
        let mut worked = 0.0;
        while left > 0.0 && at < self.end {
            let next_hour = hour_start(at) + Duration::hours(1);
            let room = (next_hour - at).num_milliseconds() as f64 / 60_000.0;
            let piece = left.min(room);
            if self.on_duty(agent, at) {
                let capacity = self.capacity_at(at);
                if !self.load.take_agent(&capacity, &name, at, piece) {
                    // Each agent works one call at a time, only on duty: an hour's agent
                    // minutes cannot run out before its agents do.
                    *self.refusals.entry("simulator:queue_hour_overbooked".into()).or_default() += 1;
                }
                self.agent_minutes[queue] += piece;
                worked += piece;
            } else {
                self.overtime_minutes[queue] += piece;
            }
            left -= piece;
            at = next_hour;
        }
        worked
    }

    async fn agent_call(&mut self, engine: &Engine<'_>, agent: usize, at: DateTime<Utc>) -> anyhow::Result<()> {
        let Some(mut held) = self.agents[agent].lease.clone() else {
            self.push(at, What::AgentFree(agent));
            return Ok(());
        };
        let id = self.agents[agent].id.clone();
        if at >= held.expires_at {
            // The lease lapsed (its window or the contact hours ended): the reaper takes it back.
            self.agents[agent].lease = None;
            self.push(at, What::AgentFree(agent));
            return Ok(());
        }
        if held.expires_at - at < Duration::minutes(2) {
            match work::heartbeat(engine.db, &engine.rules, held.task_id, &id, at, engine.lease_ttl).await {
                Ok(renewed) => held.expires_at = renewed.lease_expires_at,
                Err(WorkError::Store(error)) => return Err(error.into()),
                Err(_) => {
                    // Outside the hours or no longer workable: the agent stops here.
                    self.agents[agent].lease = Some(held);
                    self.push(at, What::AgentDone(agent));
                    return Ok(());
                }
            }
        }
        // The first listed phone with calls left under the per-number cap.
        let phone = held.phones.iter().position(|(_, left)| *left > 0);
        let (Some(phone), Some(account), true) = (phone, self.index.of(&held.account_id), self.on_duty(agent, at))
        else {
            self.agents[agent].lease = Some(held);
            self.push(at, What::AgentDone(agent));
            return Ok(());
        };
        let actor = Actor::Agent(id);
        let strategy = held.strategy.clone();
        let number = held.phones[phone].0.clone();
        let reported = self
            .report(engine, held.task_id, &actor, account, Channel::Human, Some(number), at, &strategy, held.exempt)
            .await?;
        let (outcome, minutes) = match &reported {
            Some((outcome, minutes, _)) => (*outcome, minutes.unwrap_or(1.0)),
            None => (Outcome::Failed, 1.0),
        };
        let worked = self.book(agent, at, minutes);
        self.tally.agent_minutes(account, worked);
        let end = at + Duration::milliseconds((minutes * 60_000.0).round() as i64);
        self.agents[agent].free_at = end;
        held.calls_left = held.calls_left.saturating_sub(1);
        if outcome == Outcome::WrongNumber {
            held.phones[phone].1 = 0;
        } else if outcome.is_unanswered() {
            held.phones[phone].1 = held.phones[phone].1.saturating_sub(1);
        }
        let closed = reported.as_ref().is_some_and(|(_, _, recorded)| recorded.tasks_cancelled.contains(&held.task_id));
        let more = reported.is_some()
            && !outcome.is_conversation()
            && held.calls_left > 0
            && !closed
            && held.phones.iter().any(|(_, left)| *left > 0);
        self.agents[agent].lease = Some(held);
        self.push(end, if more { What::AgentCall(agent) } else { What::AgentDone(agent) });
        Ok(())
    }

    async fn agent_done(&mut self, engine: &Engine<'_>, agent: usize, at: DateTime<Utc>) -> anyhow::Result<()> {
        if let Some(held) = self.agents[agent].lease.take()
            && at < held.expires_at
        {
            let id = self.agents[agent].id.clone();
            let started = std::time::Instant::now();
            let completed = work::complete(engine.db, held.task_id, &id, at).await;
            self.profile.add("complete", started);
            match completed {
                // A conflict: an outcome (a promise, a dispute) already closed the task.
                Ok(_) | Err(WorkError::Conflict(_)) => {}
                Err(WorkError::Store(error)) => return Err(error.into()),
                Err(error) => self.refused("complete", &error),
            }
        }
        self.push(at, What::AgentFree(agent));
        Ok(())
    }
}
