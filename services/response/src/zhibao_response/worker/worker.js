// The community worker's page: list the community's open tasks, accept one, report its result.
// Tokens live in sessionStorage only (never in a URL). Task results go to intake as a
// zhibao.task_result.v1 CloudEvent through this origin's /worker/results forwarder.
"use strict";

(function () {
  const TASK_KEY = "zhibao.worker.taskToken";
  const REPORT_KEY = "zhibao.worker.reportToken";
  const OPEN_STATES = ["issued", "accepted"];
  const KINDS = {
    verify_companion: "核查时空伴随者",
    verify_contact: "核查密切接触者",
    disinfect: "消杀",
    testing_round: "核酸检测",
    deliver: "物资配送",
    close_gates: "封闭小区出入口",
    notify_residents: "通知居民",
    door_to_door: "入户排查",
  };
  const STATES = { issued: "待接收", accepted: "已接收" };
  const FIELDS = {
    "data.task": "任务",
    "data.outcome": "核查结果",
    "data.method": "核查方式",
    "data.measures": "措施",
    "data.transfer_to": "转往社区",
    "data.until": "隔离结束日期",
    "data.note": "备注",
    subject: "社区",
    time: "时间",
    type: "事件类型",
  };

  // Intake's reasons (English) for the refusals a worker can meet, said plainly; the
  // original follows in brackets for whoever supports the worker.
  const PLAIN = [
    ["data.method", /visit/i, "这类任务必须上门核查，电话核查不能办结；请上门后再提交。"],
    ["data.task", /closed|no longer open/i, "这项任务已经办结，不能再上报结果；请点“刷新”。"],
    ["data.task", /no task|unknown|not known/i, "系统里暂时没有这项任务（可能刚下发），请稍后重试。"],
    ["subject", /assigned|not to/i, "这项任务已不属于本社区（可能已转走）；请点“刷新”。"],
    ["data.transfer_to", /with that community|already/i, "任务已在该社区，不能转给它自己。"],
    ["data.transfer_to", /district/i, "只能转给本区（县）内的社区；要转往外区，请联系下发任务的指挥部。"],
    ["data.transfer_to", /community|registry/i, "转往社区的代码不在名册中，请核对。"],
    ["data.note", /resident|id number|身份证/i, "备注里不能写身份证号。"],
  ];
  const $ = (selector, root) => (root || document).querySelector(selector);
  const state = { community: null, tasks: [] };

  function tokens() {
    return {
      task: sessionStorage.getItem(TASK_KEY),
      report: sessionStorage.getItem(REPORT_KEY),
    };
  }

  async function call(path, token, options) {
    const init = Object.assign({ headers: {} }, options || {});
    init.headers.authorization = "Bearer " + token;
    if (init.body !== undefined) init.headers["content-type"] = "application/json";
    let answer;
    try {
      answer = await fetch(path, init);
    } catch (error) {
      return { status: 0, body: null };
    }
    let body = null;
    try {
      body = await answer.json();
    } catch (error) {
      body = null;
    }
    return { status: answer.status, body: body };
  }

  function detailText(body) {
    if (!body) return "";
    const detail = body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg || "").join("；");
    return "";
  }

  // ---- signing in and out ----

  async function signIn(event) {
    event.preventDefault();
    const task = $("#task-token").value.trim();
    const report = $("#report-token").value.trim();
    const error = $("#sign-in-error");
    error.textContent = "";
    if (!task || !report) {
      error.textContent = "请填写任务令牌和上报令牌。";
      return;
    }
    sessionStorage.setItem(TASK_KEY, task);
    sessionStorage.setItem(REPORT_KEY, report);
    $("#task-token").value = "";
    $("#report-token").value = "";
    await start();
  }

  function signOut(message) {
    sessionStorage.removeItem(TASK_KEY);
    sessionStorage.removeItem(REPORT_KEY);
    state.community = null;
    state.tasks = [];
    $("#task-list").replaceChildren();
    $("#tasks-view").hidden = true;
    $("#sign-out").hidden = true;
    $("#sign-in").hidden = false;
    $("#sign-in-error").textContent = message || "";
  }

  async function start() {
    const token = tokens().task;
    if (!token || !tokens().report) {
      signOut("");
      return;
    }
    const me = await call("/worker/me", token);
    if (me.status === 401) return signOut("任务令牌无效、已过期或已吊销，请重新输入。");
    if (me.status === 403) return signOut("任务令牌没有查看任务的权限（需要 operate 或 read 令牌）。");
    if (me.status !== 200) return signOut("暂时无法连接任务服务，请稍后再试。");
    const communities = me.body.communities;
    if (communities.length === 0) {
      return signOut("这个任务令牌不属于某一个社区；请使用本社区的令牌。");
    }
    state.community = communities[0];
    fillCommunities(me.body.transfer_to);
    $("#sign-in").hidden = true;
    $("#tasks-view").hidden = false;
    $("#sign-out").hidden = false;
    $("#community-name").textContent = state.community.name;
    await loadTasks();
  }

  function fillCommunities(list) {
    const options = list
      .filter((unit) => unit.code !== state.community.code)
      .map((unit) => {
        const option = document.createElement("option");
        option.value = unit.code;
        option.label = unit.name;
        option.textContent = unit.name;
        return option;
      });
    $("#communities").replaceChildren(...options);
  }

  // ---- the task list ----

  async function loadTasks() {
    const token = tokens().task;
    const unit = state.community.code;
    const listError = $("#list-error");
    listError.textContent = "";
    $("#summary").textContent = "正在加载…";
    const answers = await Promise.all(
      OPEN_STATES.map((s) =>
        call("/v1/tasks?unit=" + encodeURIComponent(unit) + "&state=" + s + "&limit=500", token)
      )
    );
    const failed = answers.find((a) => a.status !== 200);
    if (failed) {
      if (failed.status === 401) return signOut("任务令牌无效、已过期或已吊销，请重新输入。");
      $("#summary").textContent = "";
      listError.textContent = "任务加载失败" + (failed.status ? "（" + failed.status + "）" : "") +
        "，请点“刷新”重试。";
      return;
    }
    state.tasks = answers
      .flatMap((a) => a.body.tasks)
      .filter((t) => t.unit === unit)
      .sort((a, b) => Date.parse(a.due) - Date.parse(b.due) || a.id.localeCompare(b.id));
    render();
  }

  function render() {
    const list = $("#task-list");
    list.replaceChildren(...state.tasks.map(card));
    const overdue = state.tasks.filter((t) => t.overdue).length;
    $("#summary").textContent =
      state.tasks.length === 0
        ? "目前没有待办任务。"
        : "待办任务 " + state.tasks.length + " 件" + (overdue ? "，其中已超时 " + overdue + " 件" : "") + "。";
  }

  function formatDue(iso) {
    const due = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return (due.getMonth() + 1) + "月" + due.getDate() + "日 " + pad(due.getHours()) + ":" + pad(due.getMinutes());
  }

  function maskedId(id) {
    return id.length > 10 ? id.slice(0, 6) + "********" + id.slice(-4) : "****";
  }

  function addDetail(list, term, value, href) {
    if (!value) return;
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    if (href) {
      const link = document.createElement("a");
      link.href = href;
      link.textContent = value;
      dd.append(link);
    } else {
      dd.textContent = value;
    }
    list.append(dt, dd);
  }

  function card(task) {
    const item = $("#task-template").content.firstElementChild.cloneNode(true);
    item.id = "task-" + task.id;
    item.dataset.task = task.id;
    item.dataset.state = task.state;
    item.classList.toggle("overdue", Boolean(task.overdue));
    $(".kind", item).textContent = KINDS[task.kind] || task.kind;
    $(".due", item).textContent = "完成时限：" + formatDue(task.due) + (task.overdue ? "（已超时）" : "");
    const details = $(".details", item);
    const contact = task.contact || {};
    addDetail(details, "姓名", contact.name);
    addDetail(details, "电话", contact.phone, contact.phone ? "tel:" + contact.phone.replace(/[^0-9+]/g, "") : null);
    addDetail(details, "住址", contact.address);
    addDetail(details, "小区", task.compound);
    if (task.person && task.person.id_number) addDetail(details, "身份证号", maskedId(task.person.id_number));
    addDetail(details, "要求", task.note);
    addDetail(details, "网格员", task.worker);
    if (task.details === "withheld") addDetail(details, "详情", "此令牌无权查看联系信息");
    $(".state", item).textContent = "状态：" + (STATES[task.state] || task.state);
    $("[data-action=accept]", item).hidden = task.state !== "issued";
    $("[data-action=accept]", item).addEventListener("click", () => accept(task, item));
    $("[data-action=report]", item).addEventListener("click", () => openForm(task, item));
    prepareForm(task, item);
    return item;
  }

  async function accept(task, item) {
    const button = $("[data-action=accept]", item);
    const error = $(".card-error", item);
    error.textContent = "";
    button.disabled = true;
    const answer = await call("/v1/tasks/" + task.id + "/state", tokens().task, {
      method: "POST",
      body: JSON.stringify({ state: "accepted" }),
    });
    button.disabled = false;
    if (answer.status === 200) {
      task.state = "accepted";
      item.dataset.state = "accepted";
      $(".state", item).textContent = "状态：" + STATES.accepted;
      button.hidden = true;
      return;
    }
    const reasons = {
      0: "网络不通，请稍后重试。",
      401: "任务令牌无效、已过期或已吊销。",
      403: "这个令牌不能接收任务（需要本社区的 operate 令牌）。",
      409: "任务状态已变化，请点“刷新”。",
    };
    error.textContent = "接收失败：" + (reasons[answer.status] || detailText(answer.body) || answer.status);
  }

  // ---- the result form ----

  function prepareForm(task, item) {
    const form = $("form.result", item);
    form.querySelectorAll("[data-name]").forEach((input, index) => {
      const field = input.dataset.name;
      input.name = field + "-" + task.id;
      if (input.type !== "radio" && input.type !== "checkbox") {
        input.id = field + "-" + task.id;
        const label = form.querySelector("label[data-for='" + field + "']");
        if (label) label.htmlFor = input.id;
      } else {
        input.id = field + "-" + task.id + "-" + index;
      }
    });
    form.addEventListener("change", () => {
      const outcome = value(form, "outcome");
      const transfer = outcome === "transferred";
      // measures are taken when a task is done (intake refuses them otherwise)
      const measures = outcome === null || outcome === "done";
      $(".measures-field", form).hidden = !measures;
      $(".until-field", form).hidden = !measures;
      $(".transfer-field", form).hidden = !transfer;
      $("[data-name=transfer_to]", form).required = transfer;
    });
    $("[data-action=cancel]", form).addEventListener("click", () => {
      form.hidden = true;
      $("[data-action=report]", item).focus();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitResult(task, item, form);
    });
  }

  function openForm(task, item) {
    const form = $("form.result", item);
    form.hidden = false;
    if (!form.dataset.eventId) form.dataset.eventId = newEventId();
    $("input[data-name=outcome]", form).focus();
  }

  function value(form, field) {
    const checked = form.querySelector("input[data-name=" + field + "]:checked");
    return checked ? checked.value : null;
  }

  function newEventId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "worker-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function resultData(task, form) {
    const data = {
      task: task.id,
      outcome: value(form, "outcome"),
      method: value(form, "method"),
      measures: [],
    };
    if (data.outcome === "done") {
      data.measures = Array.from(form.querySelectorAll("input[data-name=measures]:checked"), (m) => m.value);
      const until = $("[data-name=until]", form).value;
      if (until) data.until = until;
    }
    const note = $("[data-name=note]", form).value.trim();
    if (note) data.note = note;
    if (data.outcome === "transferred") data.transfer_to = $("[data-name=transfer_to]", form).value.trim();
    return data;
  }

  function missing(data) {
    const problems = [];
    if (!data.outcome) problems.push("请选择核查结果。");
    if (!data.method) problems.push("请选择核查方式（上门或电话）。");
    if (data.outcome === "transferred" && !/^[0-9]{12}$/.test(data.transfer_to || "")) {
      problems.push("转出时请填写转往社区的12位代码。");
    }
    return problems;
  }

  async function submitResult(task, item, form) {
    const error = $(".result-error", form);
    error.replaceChildren();
    const data = resultData(task, form);
    const problems = missing(data);
    if (problems.length) return showProblems(error, "还不能提交：", problems);
    const event = {
      specversion: "1.0",
      id: form.dataset.eventId || newEventId(),
      source: "/" + task.unit + "/worker-page",
      type: "zhibao.task_result.v1",
      subject: task.unit,
      time: new Date().toISOString(),
      data: data,
    };
    const button = $("button[type=submit]", form);
    button.disabled = true;
    const answer = await call("/worker/results", tokens().report, {
      method: "POST",
      body: JSON.stringify(event),
    });
    button.disabled = false;
    if (answer.status === 202) {
      form.hidden = true;
      item.dataset.reported = "true";
      $(".actions", item).hidden = true;
      $(".reported", item).textContent = "结果已上报，等待系统处理。";
      return;
    }
    showProblems(error, "上报未被接受：", refusal(answer));
  }

  function refusal(answer) {
    const general = {
      0: "网络不通，结果没有发出，请稍后重试。",
      401: "上报令牌无效、已过期或已吊销，请退出后重新输入。",
      413: "内容太长，请缩短备注。",
      429: "提交太频繁，请稍等片刻再试。",
      502: "暂时连不上上报服务，结果没有发出，请稍后重试。",
      503: "系统暂时无法保存，结果没有保存，请稍后重试。",
    };
    if (general[answer.status]) return [general[answer.status]];
    const result = answer.body && Array.isArray(answer.body.results) ? answer.body.results[0] : null;
    if (!result) {
      if (answer.status === 403) return ["这个上报令牌不能上报（需要本社区的 report 令牌）：" + detailText(answer.body)];
      return [detailText(answer.body) || "未知错误（" + answer.status + "）"];
    }
    if (result.code === "forbidden") return ["这个上报令牌不能为本社区上报。"];
    if (result.code === "unknown_unit") return ["社区代码不在名册中。"];
    const errors = (result.errors || []).map(plainError);
    return errors.length ? errors : ["未知原因（" + answer.status + "）"];
  }

  function plainError(error) {
    const label = FIELDS[error.field] || error.field;
    const rule = PLAIN.find(([field, pattern]) => field === error.field && pattern.test(error.message));
    const text = rule ? rule[2] + "（" + error.message + "）" : error.message;
    return label ? label + "：" + text : text;
  }

  function showProblems(box, title, lines) {
    const heading = document.createElement("p");
    heading.textContent = title;
    const list = document.createElement("ul");
    lines.forEach((line) => {
      const li = document.createElement("li");
      li.textContent = line;
      list.append(li);
    });
    box.replaceChildren(heading, list);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#sign-in").addEventListener("submit", signIn);
    $("#sign-out").addEventListener("click", () => signOut(""));
    $("#refresh").addEventListener("click", loadTasks);
    start();
  });
})();
