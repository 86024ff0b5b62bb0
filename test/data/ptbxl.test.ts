// PTB-XL index: a mini ptbxl_database.csv (exact 28-column header) and scp_statements.csv rows.
import { assert } from '../helpers.js';
import {
  multiHot,
  parsePtbxlDatabase,
  parseScpStatements,
  ptbxlClasses,
  ptbxlLabels,
  ptbxlRecordPath,
  ptbxlSplit,
} from '../../train/data/ptbxl.js';
import { ptbxlDatabaseCsv, SCP_STATEMENTS_CSV } from './fixtures.js';

describe('data: PTB-XL index', () => {
  const statements = parseScpStatements(SCP_STATEMENTS_CSV);
  const rows = parsePtbxlDatabase(ptbxlDatabaseCsv());

  it('parses scp_statements.csv (empty first column name, quoted category)', () => {
    assert(statements.size === 11, `statements ${statements.size}`);
    const avb = statements.get('1AVB')!;
    assert(avb.diagnostic && !avb.form && !avb.rhythm && avb.diagnosticClass === 'CD' && avb.diagnosticSubclass === '_AVB', `1AVB ${JSON.stringify(avb)}`);
    assert(avb.category === 'Sinus node dysfunction, atrial and AV-conduction defects', 'quoted category with comma');
    const ndt = statements.get('NDT')!;
    assert(ndt.diagnostic && ndt.form && ndt.diagnosticClass === 'STTC', 'NDT is diagnostic and form');
    assert(statements.get('AFIB')!.rhythm && statements.get('AFIB')!.diagnosticClass === null, 'AFIB rhythm');
  });

  it('parses ptbxl_database.csv rows, including the real row and quoted reports', () => {
    assert(rows.length === 11, `rows ${rows.length}`);
    const r3 = rows[2];
    assert(r3.raw.report === 'sinusrhythmus, Ä inferiorer infarkt, "alt"', `report ${r3.raw.report}`);
    assert(r3.patientId === 20372 && r3.sex === 'female' && r3.age === 56 && r3.fold === 5, `row 3 ${JSON.stringify(r3)}`);
    assert(r3.scpCodes.ASMI === 100 && r3.scpCodes.IMI === 35, 'scp codes');
    const real = rows[10];
    assert(real.ecgId === 15513 && real.patientId === 17787 && real.age === 88 && real.sex === 'male' && real.fold === 10, `real row ${JSON.stringify(real)}`);
    assert(real.raw.height === '' && real.raw.heart_axis === 'MID' && real.raw.device === 'CS-12', 'empty and categorical fields');
    assert(ptbxlRecordPath(real, 500) === 'records500/15000/15513_hr' && ptbxlRecordPath(real, 100) === 'records100/15000/15513_lr', 'paths');
    assert(ptbxlRecordPath({ ...real, filenameHr: '', ecgId: 21001 }, 500) === 'records500/21000/21001_hr', 'path from ecg_id');
  });

  it('aggregates labels at every level (likelihood ignored, 0.0 counts)', () => {
    const l = ptbxlLabels(rows[2].scpCodes, statements);
    assert(l.superdiagnostic.join() === 'MI' && l.subdiagnostic.join() === 'AMI,IMI' && l.diagnostic.join() === 'ASMI,IMI', `row 3 ${JSON.stringify(l)}`);
    assert(l.rhythm.join() === 'SR' && l.form.length === 0 && l.all.join() === 'ASMI,IMI,SR', `row 3 rhythm/form/all`);
    const l5 = ptbxlLabels(rows[4].scpCodes, statements);
    assert(l5.superdiagnostic.join() === 'HYP,STTC' && l5.form.join() === 'NDT' && l5.rhythm.join() === 'AFIB', `row 5 ${JSON.stringify(l5)}`);
    const l6 = ptbxlLabels(rows[5].scpCodes, statements);
    assert(l6.superdiagnostic.length === 0 && l6.form.join() === 'LVOLT', 'form-only record has no superclass');
    const l2 = ptbxlLabels(rows[1].scpCodes, statements);
    assert(l2.all.join() === 'NORM,SBRAD' && l2.rhythm.length === 0, 'unknown code counts only for all');
    const l4 = ptbxlLabels(rows[3].scpCodes, statements);
    assert(l4.superdiagnostic.join() === 'CD' && l4.subdiagnostic.join() === 'CLBBB,_AVB', `row 4 ${JSON.stringify(l4)}`);
  });

  it('class lists, multi-hot and the fold splits', () => {
    assert(ptbxlClasses(statements, 'superdiagnostic').join() === 'CD,HYP,MI,NORM,STTC', 'superclasses sorted');
    assert(ptbxlClasses(statements, 'rhythm').join() === 'AFIB,AFLT,SR' && ptbxlClasses(statements, 'form').join() === 'LVOLT,NDT', 'rhythm/form');
    assert(ptbxlClasses(statements, 'all').length === 11, 'all');
    const mh = multiHot(['STTC', 'HYP'], ptbxlClasses(statements, 'superdiagnostic'));
    assert([...mh].join() === '0,1,0,0,1', `multi-hot ${mh}`);
    const split = (s: 'standard' | 'kim') => rows.map((r) => ptbxlSplit(r.fold, s));
    assert(split('standard').filter((s) => s === 'val').length === 1 && split('standard').filter((s) => s === 'test').length === 1, 'standard 1–8/9/10');
    assert(!split('kim').includes('val'), 'kim: no val fold');
    // Folds are patient-disjoint: patient 15709 appears twice, both in fold 3.
    const byPatient = new Map<number, Set<number>>();
    for (const r of rows) byPatient.set(r.patientId!, (byPatient.get(r.patientId!) ?? new Set()).add(r.fold));
    assert([...byPatient.values()].every((s) => s.size === 1), 'one fold per patient');
  });
});
