// Draws every part, then says so on <body> with the time from navigation start.
'use strict';
drawHeader(DATA.header, document.getElementById('header'));
drawTimelineSection(DATA.timeline, DATA.header, document.getElementById('timeline'), document.getElementById('timeline-note'));
drawMemorySection(DATA.memory, DATA.timeline, document.getElementById('memory'), document.getElementById('memory-live'));
drawDataflowSection(DATA.dataflow, document.getElementById('dataflow'), document.getElementById('dataflow-note'));
document.body.dataset.drawnMs = String(Math.round(performance.now()));
document.body.dataset.drawn = 'true';
